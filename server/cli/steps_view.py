"""`tasker task show`'s step tree (parents → children) and compact timeline.

Both are drawn from the steps the public client returns (`parents`, `children`, and the last
attempt's `started_at` / `completed_at`), so they work against any Tasker server.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

from rich.console import Group
from rich.text import Text
from rich.tree import Tree

from server.cli.render import STATUS_STYLE, duration, parse_time, status_text
from server.client import Step, Task
from server.domain.states import StepState

SHARED = "↑ shared, shown under "
"""A step with several parents is drawn once, under the first; elsewhere it is marked."""


def _label(step: Step) -> Text:
    took = duration(step)
    if step.get("skipped"):  # completed without running: its run_if was false
        return Text.assemble((step["name"], "bold dim"), "  ", ("skipped", "dim italic"))
    return Text.assemble(
        (step["name"], "bold"), "  ", status_text(step["status"]), (f"  {took}" if took else "")
    )


def step_tree(steps: Sequence[Step]) -> Tree:
    """The DAG as a tree: roots are steps without parents; a join appears once in full."""
    by_name = {step["name"]: step for step in steps}
    tree = Tree(Text("steps", style="bold"), guide_style="dim")
    drawn: dict[str, str] = {}  # step name -> the parent it was drawn under ("" for a root)

    def add(node: Tree, step: Step, parent: str) -> None:
        if step["name"] in drawn:
            first = drawn[step["name"]] or "the root"
            node.add(Text.assemble((step["name"], "bold"), "  ", (SHARED + first, "dim")))
            return
        drawn[step["name"]] = parent
        branch = node.add(_label(step))
        for child in step["children"]:
            if child in by_name:
                add(branch, by_name[child], step["name"])

    for step in steps:
        if not [p for p in step["parents"] if p in by_name]:
            add(tree, step, "")
    for step in steps:  # a cycle never reached from a root still shows (it should not exist)
        if step["name"] not in drawn:
            add(tree, step, "")
    return tree


BAR = "█"
SPACE = "·"
NAME_MAX = 24


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def _spans(
    task: Task, steps: Sequence[Step], now: datetime
) -> tuple[list[tuple[Step, float, float]], float]:
    """(step, start, end) in seconds from the task's creation, and the span of them all."""
    origin = parse_time(task["created_at"]) or now
    spans = []
    for step in steps:
        start = parse_time(step.get("started_at"))
        if start is None:
            continue
        end = parse_time(step.get("completed_at"))
        if end is None or end < start:  # running: up to now; stopped without an end: a tick
            end = now if step["status"] == StepState.IN_PROGRESS.value else start
        spans.append((step, (start - origin).total_seconds(), (end - origin).total_seconds()))
    finished = parse_time(task.get("completed_at"))
    ends = [end for _step, _start, end in spans]
    if finished is not None:
        ends.append((finished - origin).total_seconds())
    return spans, max(ends, default=0.0)


def timeline(task: Task, steps: Sequence[Step], width: int, now: datetime | None = None) -> Group:
    """One bar per started step (its last attempt) on a shared axis from the task's
    creation, scaled so the whole run fits the width."""
    spans, total = _spans(task, steps, now or datetime.now(UTC))
    header = Text(f"timeline  0 → {_seconds(total)} after the task was created", style="bold")
    if not spans:
        return Group(header, Text("  no step has started", style="dim"))
    label = min(max(len(step["name"]) for step, _b, _e in spans), NAME_MAX)
    cells = max(width - label - 2 - 1 - 9, 10)  # name, gaps, the duration on the right
    scale = cells / total if total > 0 else 0.0
    lines = [header]
    for step, start, end in spans:
        first = min(round(start * scale), cells - 1)
        last = max(first + 1, min(round(end * scale), cells))
        bar = SPACE * first + BAR * (last - first) + SPACE * (cells - last)
        name = step["name"][:label].ljust(label)
        style = STATUS_STYLE.get(step["status"], "")
        lines.append(Text.assemble(name, "  ", (bar, style), " ", _seconds(end - start).rjust(9)))
    return Group(*lines)
