"""Who is calling and what they may do: the `tasker.<resource>:<action>` grants of DESIGN §5.3.

Pure Python, so services and every adapter can reason about permissions without the token
machinery; `server.auth` turns a verified JWT into a `Principal`.

A grant is `tasker.<resource>:<action>`, where `*` may stand for the resource, the action or
both (`tasker.*:index`, `tasker.task:*`, `tasker.*:*`), or `*` alone for everything. Anything
else in a token (typos, other applications' scopes, unicode) grants nothing; it is not an error,
because tokens are often shared with other services. Some actions imply others
(`server.domain.permissions.IMPLIED_ACTIONS`: `:destroy` also grants `:cancel`).
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from server.domain.permissions import IMPLIED_ACTIONS

WILDCARD: Final = "*"

RESOURCES: Final[Mapping[str, tuple[str, ...]]] = {
    "task": (
        "index",
        "show",
        "create",
        "update",
        "destroy",
        "retry",
        "cancel",
        "pause",
        "signal",
        "bulk",
    ),
    "workflow_step": ("index", "show", "update", "destroy", "retry", "cancel"),
    "handler": ("index", "show", "pause"),
    "schedule": ("index", "show", "create", "update", "destroy"),
    "task_diagram": ("index", "show"),
    "analytics": ("index",),
    "metrics": ("index",),
    "health_status": ("index",),
}
"""Every resource and its actions (DESIGN §5.3)."""

KNOWN_PERMISSIONS: Final = frozenset(
    f"tasker.{resource}:{action}" for resource, actions in RESOURCES.items() for action in actions
)

_GRANT = re.compile(r"tasker\.([a-z_]+|\*):([a-z_]+|\*)")


def split_permission(text: str) -> tuple[str, str] | None:
    """`("task", "show")` for `tasker.task:show`, `("*", "*")` for `*`; None if malformed."""
    if text == WILDCARD:
        return WILDCARD, WILDCARD
    match = _GRANT.fullmatch(text)
    return (match[1], match[2]) if match else None


def is_valid_grant(text: str) -> bool:
    """A well-formed grant naming a known resource and action (or wildcards in their place)."""
    parts = split_permission(text)
    if parts is None:
        return False
    resource, action = parts
    if resource == WILDCARD:
        return action == WILDCARD or any(action in acts for acts in RESOURCES.values())
    return resource in RESOURCES and (action == WILDCARD or action in RESOURCES[resource])


class Grants:
    """A token's permissions compiled for O(1) checks, however many it lists."""

    __slots__ = ("any_action", "any_resource", "everything", "exact")

    def __init__(self, permissions: Iterable[str]) -> None:
        self.everything = False
        self.exact: set[tuple[str, str]] = set()
        self.any_resource: set[str] = set()  # actions granted on every resource
        self.any_action: set[str] = set()  # resources granted every action
        for text in permissions:
            parts = split_permission(text)
            if parts is None:
                continue
            resource, action = parts
            if resource == WILDCARD and action == WILDCARD:
                self.everything = True
                continue
            for granted in (action, IMPLIED_ACTIONS.get(action)):
                if granted is None:
                    continue
                if resource == WILDCARD:
                    self.any_resource.add(granted)
                elif granted == WILDCARD:
                    self.any_action.add(resource)
                else:
                    self.exact.add((resource, granted))

    def allows(self, permission: str) -> bool:
        """Whether these grants cover `permission` (a concrete `tasker.<resource>:<action>`)."""
        if self.everything:
            return True
        parts = split_permission(permission)
        if parts is None or WILDCARD in parts:
            # Asking for a wildcard would be a bug in a permission table: never grant it.
            return False
        resource, action = parts
        return parts in self.exact or action in self.any_resource or resource in self.any_action


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: the token's `sub` and what its `permissions` claim grants."""

    subject: str
    permissions: frozenset[str] = frozenset()
    expires_at: float | None = None
    """The token's `exp` (seconds since the epoch); a websocket outliving it is refused."""
    grants: Grants = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "grants", Grants(self.permissions))

    def allows(self, permission: str) -> bool:
        """Whether this caller holds `permission`, directly or through a wildcard."""
        return self.grants.allows(permission)

    def missing(self, permissions: Iterable[str]) -> list[str]:
        """The permissions among `permissions` this caller lacks, sorted."""
        return sorted({p for p in permissions if not self.allows(p)})

    def expired(self, now: float, leeway: float = 0.0) -> bool:
        """Whether the token behind this principal has expired (allowing `leeway` seconds)."""
        return self.expires_at is not None and now > self.expires_at + leeway
