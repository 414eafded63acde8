"""What a field's sub-selection asks for, read from the parsed document.

Lets a resolver skip a read that no requested field needs (the step edges, when neither
`parents` nor `children` is selected). Works on graphql-core's AST directly: strawberry's
`info.selected_fields` converts the whole sub-tree on every call, for every row of a list.
"""

from collections.abc import Iterable, Iterator, Mapping, Sequence

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    SelectionNode,
)

from graphql_schema.context import Info


def fields_at(info: Info, path: Sequence[str]) -> list[FieldNode]:
    """The fields at `path` below the current field (`("edges", "node", "steps")`: a page's
    tasks' steps), under any alias, through fragments."""
    raw = info._raw_info
    fields: list[FieldNode] = list(raw.field_nodes)
    for name in path:
        fields = [f for f in subfields(fields, raw.fragments) if f.name.value == name]
    return fields


def selects_any(
    fields: Iterable[FieldNode],
    fragments: Mapping[str, FragmentDefinitionNode],
    names: frozenset[str],
) -> bool:
    """True when the sub-selection of any of `fields` names any of `names`."""
    return any(f.name.value in names for f in subfields(fields, fragments))


def subfields(
    fields: Iterable[FieldNode], fragments: Mapping[str, FragmentDefinitionNode]
) -> Iterator[FieldNode]:
    """The fields of the sub-selections of `fields`, directly or in an inline fragment or a
    fragment spread (each fragment walked once)."""
    seen: set[str] = set()

    def walk(selections: Iterable[SelectionNode]) -> Iterator[FieldNode]:
        for node in selections:
            if isinstance(node, FieldNode):
                yield node
            elif isinstance(node, InlineFragmentNode):
                yield from walk(node.selection_set.selections)
            elif isinstance(node, FragmentSpreadNode):
                name = node.name.value
                fragment = fragments.get(name)
                if name not in seen and fragment is not None:
                    seen.add(name)
                    yield from walk(fragment.selection_set.selections)

    for field in fields:
        if field.selection_set is not None:
            yield from walk(field.selection_set.selections)
