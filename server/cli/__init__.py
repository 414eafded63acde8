"""The `tasker` command line.

`commands` holds what runs in this process (serve, worker, migrate, prune, token, handlers);
`tasks` the task commands, which talk to a server's public REST API through `server.client` and
so work against any server (`history` adds `task events`); `render` and `steps_view` draw
their output.
"""

from server.cli import (
    dynamic,  # noqa: F401  (registers `task rerun`, `tasks cancel|retry|rerun`)
    history,  # noqa: F401  (registers `tasker task events`)
    pausing,  # noqa: F401  (registers `task pause|resume`, `handlers pause|resume`)
)
from server.cli.commands import main
from server.cli.schedules import schedules
from server.cli.tasks import task, tasks

main.add_command(task)
main.add_command(tasks)
main.add_command(schedules)

__all__ = ["main"]
