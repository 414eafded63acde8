"""`tasker task show` lines for dynamic workflows: the parent a child task was started by,
the task a fork was made from, and each map step's item progress."""

from collections.abc import Sequence

from rich.console import Group
from rich.text import Text

from server.client.types import Step, Task


def progress_line(step: Step) -> Text | None:
    """`double  items 980/1000 complete · 3 error · 20 running` for a map step, else None."""
    counts = step.get("items")
    if not counts:
        return None
    line = Text(f"{step['name']}  ", style="bold")
    line.append(f"items {counts['complete']}/{counts['total']} complete")
    if counts["error"]:
        line.append(f" · {counts['error']} error", style="red")
    if counts["in_progress"]:
        line.append(f" · {counts['in_progress']} running", style="yellow")
    return line


def dynamic_lines(task: Task, steps: Sequence[Step]) -> Group | None:
    """The parent and fork links and the map steps' progress; None when there is none."""
    lines: list[Text] = []
    parent = task.get("parent_task_id")
    if parent:
        lines.append(Text(f"started by task {parent} (step {task.get('parent_step')})"))
    original = task.get("forked_from")
    if original:
        lines.append(Text(f"forked from task {original} (`tasker task show {original}`)"))
    lines += [line for step in steps if (line := progress_line(step)) is not None]
    return Group(*lines) if lines else None
