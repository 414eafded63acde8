"""Whether any worker can run a ready step right now.

Two sources, because the two deployments know it differently:
- embedded (`tasker serve` with no broker URL): the server runs the step workers itself, so it
  knows they are running without asking the database. Its heartbeats are written by the
  background loop, which starts a moment after the workers do; asking only the heartbeats
  would call the server's own workers dead in that moment.
- with a broker: steps are run by `tasker worker` processes, seen only through the heartbeats
  they write (`WorkerRegistry.live`). None within the liveness window means nobody is there
  to claim a ready step.
"""

from server.services.workers import WorkerRegistry


class Liveness:
    """Answers "is any worker alive", for the explanations of why a step is not running."""

    def __init__(self, registry: WorkerRegistry | None) -> None:
        self.registry = registry
        self.consuming_here = False
        """Set by the worker pool of this process while its workers consume steps."""

    async def any_alive(self) -> bool:
        """This process's own workers consume, or some worker heartbeated recently.

        Without a registry (a core built without one) nothing can be known: say alive, so
        that a ready step reads `queued` rather than a `no_live_worker` nobody measured."""
        if self.consuming_here or self.registry is None:
            return True
        return bool(await self.registry.live())
