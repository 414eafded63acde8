"""How much work a parsed document can ask of validation, measured in one cheap pass.

graphql-core's OverlappingFieldsCanBeMerged rule compares, in every selection set, each pair
of fields that share a response name (fragments and inline fragments merged in): a document
of a few hundred `a: namespaces { name }` (or unaliased `namespaces { name }`) costs seconds.
This pass counts fields, aliases and same-name fields per merged selection set without the
schema, in time linear in the document, so such a document is refused before any rule runs.
"""

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from graphql import (
    DocumentNode,
    ExecutableDefinitionNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    SelectionSetNode,
)

QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
OFFLOAD_CHARS = 2_000
"""Documents longer than this are parsed, authorized and validated in a thread: each step
costs milliseconds at the token limit, which the event loop (and every other request on it)
would otherwise wait out."""


@dataclass(frozen=True)
class Bounds:
    max_fields: int
    max_aliases: int
    max_same_name: int


def too_complex(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": QUERY_TOO_COMPLEX})


class _Walk:
    def __init__(self, document: DocumentNode, bounds: Bounds) -> None:
        self.bounds = bounds
        self.fragments: Mapping[str, FragmentDefinitionNode] = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.fragment_names: dict[str, Counter[str]] = {}
        self.fields = 0
        self.aliases = 0
        self.queue: list[SelectionSetNode] = []

    def names_of_fragment(self, name: str, visiting: frozenset[str]) -> Counter[str]:
        """Response names a spread of `name` merges into its selection set (memoised)."""
        if name in self.fragment_names:
            return self.fragment_names[name]
        fragment = self.fragments.get(name)
        if fragment is None or name in visiting:
            return Counter()  # unknown or cyclic: validation reports it (cheaply)
        names = self.merged_names(fragment.selection_set, visiting | {name}, walk=False)
        self.fragment_names[name] = names
        return names

    def merged_names(
        self, selection_set: SelectionSetNode, visiting: frozenset[str], walk: bool
    ) -> Counter[str]:
        """Response names of one selection set with its fragments merged in; when `walk`,
        counts its fields and aliases and queues the sub-selections for `check`."""
        names: Counter[str] = Counter()
        pending = list(selection_set.selections)
        while pending:
            node = pending.pop()
            if isinstance(node, FieldNode):
                names[(node.alias or node.name).value] += 1
                if walk:
                    self.fields += 1
                    self.aliases += node.alias is not None
                    if node.selection_set is not None:
                        self.queue.append(node.selection_set)
            elif isinstance(node, InlineFragmentNode):
                pending.extend(node.selection_set.selections)
            elif isinstance(node, FragmentSpreadNode):
                names.update(self.names_of_fragment(node.name.value, visiting))
        return names

    def check(self, roots: list[SelectionSetNode]) -> GraphQLError | None:
        self.queue = roots
        while self.queue:
            names = self.merged_names(self.queue.pop(), frozenset(), walk=True)
            if names:
                name, count = names.most_common(1)[0]
                if count > self.bounds.max_same_name:
                    return too_complex(
                        f"{count} fields named '{name}' in one selection set. "
                        f"Allowed: {self.bounds.max_same_name}"
                    )
            if self.aliases > self.bounds.max_aliases:
                return too_complex(
                    f"{self.aliases} aliases found. Allowed: {self.bounds.max_aliases}"
                )
            if self.fields > self.bounds.max_fields:
                return too_complex(
                    f"The document has more than {self.bounds.max_fields} fields. "
                    f"Allowed: {self.bounds.max_fields}"
                )
        return None


def check_bounds(document: DocumentNode, bounds: Bounds) -> GraphQLError | None:
    """The first bound the document breaks, as a GraphQL error; None when within them all.

    Every definition's selection sets are counted once (fragments too); aliases and fields
    are totals over the document, so the check stops as soon as one is exceeded."""
    roots = [
        d.selection_set for d in document.definitions if isinstance(d, ExecutableDefinitionNode)
    ]
    return _Walk(document, bounds).check(roots)
