// Runs the seed's "Usage" lines for TaskerClient against a live server and prints what came
// back as one JSON document (checked by tests/api/test_rest_js_client.py).
//
//   node drive.js http://127.0.0.1:8000/tasker
//
// Analytics, health and metrics belong to other work: their outcome is reported (present,
// absent or failed) rather than stopping the run.

const { TaskerClient } = require('./tasker_client');

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// 'present', 'absent' (404) or 'failed <status>'.
async function optional(call) {
  try {
    await call();
    return 'present';
  } catch (error) {
    if (!error.response) throw error;
    return error.response.status === 404 ? 'absent' : `failed ${error.response.status}`;
  }
}

async function main() {
  const baseURL = process.argv[2];
  const tasker = new TaskerClient(baseURL, process.env.TASKER_TOKEN || 'YOUR_JWT_TOKEN');

  // Discover and create task
  const namespaces = await tasker.getNamespaces();
  const handlers = await tasker.getHandlers('payments');
  const handlerDetails = await tasker.getHandlerDetails('payments', 'process_payment', '2.1.0');
  const latest = await tasker.getHandlerDetails('payments', 'process_payment');
  const task = await tasker.createTask('process_payment', 'payments', '2.1.0', { payment_id: 123 });

  let current = await tasker.getTask(task.id);
  for (let i = 0; i < 200 && !['complete', 'error'].includes(current.status); i++) {
    await sleep(50);
    current = await tasker.getTask(task.id);
  }
  const withDependencies = await tasker.getTask(task.id, true);

  // Monitor performance and get task visualization (v2.7.0)
  const performance = await optional(() => tasker.getPerformanceAnalytics());
  const bottlenecks = await optional(() =>
    tasker.getBottleneckAnalysis({ namespace: 'payments', period: 24 }));
  const diagram = await tasker.getTaskDiagram(task.id, 'json');
  const diagramPage = await tasker.getTaskDiagram(task.id, 'html');
  const health = await optional(() => tasker.getHealthStatus());
  const metrics = await optional(() => tasker.getMetrics());

  // A client mistake arrives as a rejected promise carrying the error envelope.
  let notFound = null;
  try {
    await tasker.getHandlerDetails('payments', 'unknown_handler', '1.0.0');
  } catch (error) {
    notFound = { status: error.response.status, body: error.response.data };
  }

  process.stdout.write(JSON.stringify({
    namespaces,
    handlers,
    handlerDetails,
    latest,
    task,
    withDependencies,
    diagram,
    diagramPageStart: String(diagramPage).slice(0, 15),
    optional: { performance, bottlenecks, health, metrics },
    notFound,
  }));
}

main().catch((error) => {
  const detail = error.response ? JSON.stringify(error.response.data) : String(error.stack);
  process.stderr.write(`${detail}\n`);
  process.exit(1);
});
