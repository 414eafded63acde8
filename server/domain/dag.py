"""Step dependency graphs: validation and ordering.

Pure functions over step names; the registry uses them to reject bad definitions and the APIs
use them to describe a handler's graph.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter


class GraphError(ValueError):
    """The dependencies do not form a valid DAG; `step` names the offending step."""

    def __init__(self, message: str, step: str) -> None:
        super().__init__(message)
        self.step = step


@dataclass(frozen=True, slots=True)
class StepGraph:
    """A validated DAG: node order as declared, edges parent -> child, a topological order."""

    nodes: tuple[str, ...]
    edges: tuple[tuple[str, str], ...]
    execution_order: tuple[str, ...]

    @classmethod
    def build(cls, dependencies: Mapping[str, Iterable[str]]) -> "StepGraph":
        """Validate `{step: parents}` and return the graph.

        Raises GraphError naming the step for a duplicate, an unknown parent or a cycle.
        """
        nodes = tuple(dependencies)
        known = set(nodes)
        edges: list[tuple[str, str]] = []
        for child, parents in dependencies.items():
            seen: set[str] = set()
            for parent in parents:
                if parent not in known:
                    raise GraphError(f"step '{child}' depends on unknown step '{parent}'", child)
                if parent == child:
                    raise GraphError(f"step '{child}' depends on itself", child)
                if parent in seen:
                    continue
                seen.add(parent)
                edges.append((parent, child))
        sorter: TopologicalSorter[str] = TopologicalSorter()
        for node in nodes:
            sorter.add(node, *(p for p, c in edges if c == node))
        try:
            order = _stable_order(sorter, nodes)
        except CycleError as exc:
            cycle = [str(n) for n in exc.args[1]]
            raise GraphError(f"dependency cycle: {' -> '.join(cycle)}", cycle[0]) from exc
        return cls(nodes=nodes, edges=tuple(edges), execution_order=order)

    def parents(self, step: str) -> tuple[str, ...]:
        """The steps `step` depends on, in declaration order."""
        return tuple(p for p, c in self.edges if c == step)

    def children(self, step: str) -> tuple[str, ...]:
        """The steps that depend on `step`."""
        return tuple(c for p, c in self.edges if p == step)

    def roots(self) -> tuple[str, ...]:
        """Steps with no parents."""
        with_parents = {c for _, c in self.edges}
        return tuple(n for n in self.nodes if n not in with_parents)


def _stable_order(sorter: TopologicalSorter[str], nodes: tuple[str, ...]) -> tuple[str, ...]:
    """A topological order that breaks ties by declaration order, so it is deterministic."""
    rank = {name: i for i, name in enumerate(nodes)}
    sorter.prepare()
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=rank.__getitem__)
        order.extend(ready)
        sorter.done(*ready)
    return tuple(order)
