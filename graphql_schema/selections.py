"""What a field's sub-selection asks for, read from the parsed document.

Lets a resolver skip a read that no requested field needs (the step edges, when neither
`parents` nor `children` is selected). Works on graphql-core's AST directly: strawberry's
`info.selected_fields` converts the whole sub-tree on every call, for every row of a list.
"""

from collections.abc import Iterable, Mapping

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    SelectionNode,
)

from graphql_schema.context import Info


def asks_for_any(info: Info, names: frozenset[str]) -> bool:
    """True when the current field's selection (fragments included) names any of `names`."""
    raw = info._raw_info
    return selects_any(raw.field_nodes, raw.fragments, names)


def selects_any(
    fields: Iterable[FieldNode],
    fragments: Mapping[str, FragmentDefinitionNode],
    names: frozenset[str],
) -> bool:
    """True when the sub-selection of any of `fields` names any of `names`, directly or in
    an inline fragment or a fragment spread (each fragment walked once)."""
    seen: set[str] = set()

    def walk(selections: Iterable[SelectionNode]) -> bool:
        for node in selections:
            if isinstance(node, FieldNode):
                if node.name.value in names:
                    return True
            elif isinstance(node, InlineFragmentNode):
                if walk(node.selection_set.selections):
                    return True
            elif isinstance(node, FragmentSpreadNode):
                name = node.name.value
                fragment = fragments.get(name)
                if name not in seen and fragment is not None:
                    seen.add(name)
                    if walk(fragment.selection_set.selections):
                        return True
        return False

    return any(
        walk(field.selection_set.selections) for field in fields if field.selection_set is not None
    )
