"""Step conditions (`run_if`): parsed and checked at load, evaluated when the step is reached.

An expression is CEL (the Common Expression Language, `cel-python`), never Python: it reads
only what it is given, `parents.<step>.results...` and `context...`. The contract's forms
`<path> <op> <value>` with `==, !=, <, <=, >, >=, in` are CEL as written; `<path> exists` is
CEL's `has(<path>)`.

At load, `compile_condition` rejects what does not parse, reads a name other than `parents`
or `context`, or names a step that is not an ancestor of the step it guards. At run time
`evaluate` answers True/False, or raises `BadPath` naming the first path into the data that
does not resolve (the step then fails permanently with code BAD_PATH).
"""

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError
from lark import Tree
from lark.lexer import Token

ROOTS = ("parents", "context")
_EXISTS = re.compile(r"^(?P<path>.+?)\s+exists\s*$", re.DOTALL)


class ConditionInvalid(ValueError):
    """The expression cannot be used (load time)."""


class BadPath(Exception):
    """A path of the expression does not resolve in the step's data (run time)."""

    def __init__(self, path: str) -> None:
        super().__init__(f"path '{path}' does not resolve")
        self.path = path


class ConditionError(Exception):
    """The expression resolved but could not be evaluated to true or false."""


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled condition and the dotted paths it reads (outside `has(...)`)."""

    source: str
    paths: tuple[tuple[str, ...], ...]
    """Paths that must resolve when it is evaluated."""
    reads: tuple[tuple[str, ...], ...]
    """Every path it reads, those under `has(...)` too (checked at load)."""
    program: Any

    @property
    def steps(self) -> list[str]:
        """The steps whose results it reads (`parents.<step>...`)."""
        return sorted({p[1] for p in self.reads if p[0] == "parents" and len(p) > 1})


def cel_text(expression: str) -> str:
    """The CEL text of an expression: `<path> exists` becomes `has(<path>)`."""
    match = _EXISTS.match(expression)
    return f"has({match['path'].strip()})" if match else expression


@functools.lru_cache(maxsize=512)
def compile_condition(expression: str) -> Condition:
    """Parse and compile; ConditionInvalid when it does not parse or reads an unknown name."""
    env = celpy.Environment()
    try:
        tree = env.compile(cel_text(expression))
    except CELParseError as exc:
        raise ConditionInvalid(f"run_if does not parse: {exc}") from exc
    paths = tuple(sorted(_paths(tree, skip_has=True)))
    reads = tuple(sorted(_paths(tree, skip_has=False)))
    for path in reads:
        if path[0] not in ROOTS:
            raise ConditionInvalid(
                f"run_if reads '{'.'.join(path)}': only parents.<step>... and context... exist"
            )
    return Condition(expression, paths, reads, env.program(tree))


def check_parents(condition: Condition, ancestors: Iterable[str]) -> None:
    """ConditionInvalid when the condition reads a step that is not an ancestor."""
    known = set(ancestors)
    for path in condition.reads:
        if path[0] != "parents":
            continue
        if len(path) < 2:
            raise ConditionInvalid("run_if reads 'parents' without naming a step")
        if path[1] not in known:
            raise ConditionInvalid(
                f"run_if reads step '{path[1]}', which is not an ancestor of this step"
            )


def evaluate(condition: Condition, parents: Mapping[str, Any], context: Any) -> bool:
    """True when the step should run; BadPath / ConditionError when it cannot be decided."""
    data = {"parents": {name: {"results": r} for name, r in parents.items()}, "context": context}
    try:
        result = condition.program.evaluate({k: json_to_cel(v) for k, v in data.items()})
    except CELEvalError as exc:
        for path in condition.paths:
            if not _resolves(data, path):
                raise BadPath(".".join(path)) from exc
        raise ConditionError(f"run_if cannot be evaluated: {exc.args[0]}") from exc
    if not isinstance(result, celtypes.BoolType | bool):
        raise ConditionError(f"run_if gave {result!r}, not true or false")
    return bool(result)


def _resolves(data: Any, path: tuple[str, ...]) -> bool:
    for key in path:
        if not isinstance(data, Mapping) or key not in data:
            return False
        data = data[key]
    return True


def _paths(tree: Tree[Any], *, skip_has: bool) -> set[tuple[str, ...]]:
    """The longest dotted paths read (with `skip_has`, only those outside `has(...)`)."""
    found: set[tuple[str, ...]] = set()

    def visit(node: Tree[Any]) -> None:
        if skip_has and node.data == "ident_arg" and str(node.children[0]) == "has":
            return  # has(path) asks whether it exists: a missing path is false, not an error
        chain = _chain(node) if node.data == "member" else None
        if chain is not None:
            found.add(chain)
            return
        for child in node.children:
            if isinstance(child, Tree):
                visit(child)

    visit(tree)
    return found


def _chain(node: Tree[Any]) -> tuple[str, ...] | None:
    """`a.b.c` as ('a', 'b', 'c') when `node` is exactly such a chain, else None."""
    names: list[str] = []
    while True:
        if node.data == "member" and len(node.children) == 1:
            node = node.children[0]
        elif node.data == "member_dot" and isinstance(node.children[-1], Token):
            names.append(str(node.children[-1]))
            node = node.children[0]
        elif node.data == "primary" and len(node.children) == 1:
            node = node.children[0]
        elif node.data == "ident" and isinstance(node.children[0], Token):
            names.append(str(node.children[0]))
            return tuple(reversed(names))
        else:
            return None
