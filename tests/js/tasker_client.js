// The TaskerClient class of seed/REST_API.md ("JavaScript/Node.js Example"), unchanged.
// Only the export at the end is added, so tests/js/drive.js can use it; the seed's usage
// lines (top-level await) are reproduced by that driver.

const axios = require('axios');

class TaskerClient {
  constructor(baseURL, token) {
    this.client = axios.create({
      baseURL,
      headers: {
        'Authorization': `Bearer ${token}`,
        'Content-Type': 'application/json'
      }
    });
  }

  async getNamespaces() {
    const response = await this.client.get('/handlers');
    return response.data.namespaces;
  }

  async getHandlers(namespace) {
    const response = await this.client.get(`/handlers/${namespace}`);
    return response.data.handlers;
  }

  async getHandlerDetails(namespace, name, version = null) {
    const params = version ? { version } : {};
    const response = await this.client.get(`/handlers/${namespace}/${name}`, { params });
    return response.data;
  }

  async createTask(name, namespace, version, context) {
    const response = await this.client.post('/tasks', {
      name, namespace, version, context
    });
    return response.data;
  }

  async getTask(id, includeDependencies = false) {
    const params = includeDependencies ? { include_dependencies: true } : {};
    const response = await this.client.get(`/tasks/${id}`, { params });
    return response.data;
  }

  async getTaskDiagram(id, format = 'json') {
    const params = { format };
    const response = await this.client.get(`/tasks/${id}/task_diagrams`, { params });
    return response.data;
  }

  async getPerformanceAnalytics() {
    const response = await this.client.get('/analytics/performance');
    return response.data;
  }

  async getBottleneckAnalysis(options = {}) {
    const { namespace, name, version, period } = options;
    const params = {};
    if (namespace) params.namespace = namespace;
    if (name) params.name = name;
    if (version) params.version = version;
    if (period) params.period = period;
    
    const response = await this.client.get('/analytics/bottlenecks', { params });
    return response.data;
  }

  async getHealthStatus() {
    const response = await this.client.get('/health/status');
    return response.data;
  }

  async getMetrics() {
    const response = await this.client.get('/metrics');
    return response.data;
  }
}

module.exports = { TaskerClient };
