"""Semantic versions (semver.org 2.0.0): which strings are versions, and their precedence.

"Latest version" means highest by this precedence (1.10.0 > 1.9.0 > 1.9.0-rc.1), never
lexical; the REST layer refuses a `version` parameter that does not match `SEMVER`.
"""

import re
from typing import Any

# The grammar of semver.org 2.0.0: no leading zeros, dot-separated pre-release and build parts.
_IDENT = r"(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)"
SEMVER = re.compile(
    rf"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    rf"(?:-({_IDENT}(?:\.{_IDENT})*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?",
    re.ASCII,
)


def is_semver(version: str) -> bool:
    """True when `version` is a valid semantic version such as `2.1.0` or `1.0.0-rc.1`."""
    return SEMVER.fullmatch(version) is not None


def semver_key(version: str) -> tuple[Any, ...]:
    """A sort key giving semver precedence (1.10.0 > 1.9.0 > 1.9.0-rc.1); ValueError if invalid."""
    match = SEMVER.fullmatch(version)
    if match is None:
        raise ValueError(f"'{version}' is not a valid semantic version")
    core = tuple(int(part) for part in match.group(1, 2, 3))
    pre = match.group(4)
    if pre is None:
        return (*core, 1, (), version)
    # Numeric identifiers rank below alphanumeric ones, and a longer list wins a tie (§11).
    ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (*core, 0, ids, version)
