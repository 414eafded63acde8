"""The `tasker` command line.

`commands` holds what runs in this process (serve, worker, migrate, prune, token, handlers);
`tasks` the task commands, which talk to a server's public REST API through `server.client` and
so work against any server (`history` adds `task events`); `render` and `steps_view` draw
their output.
"""

from server.cli import dynamic, history  # noqa: F401  (register `task events`, `task rerun`...)
from server.cli.commands import main
from server.cli.tasks import task, tasks

main.add_command(task)
main.add_command(tasks)

__all__ = ["main"]
