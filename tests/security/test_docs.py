"""docs/security.md lists exactly the permission tables the code enforces."""

from pathlib import Path

from graphql_schema.permissions import FIELD_PERMISSIONS
from rest_compat.routes import DOCUMENTED

DOC = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text(encoding="utf-8")


def test_every_rest_operation_is_documented_with_its_permission():
    missing = [
        f"{op.method} {op.path}"
        for op in DOCUMENTED
        if f"| `{op.method} {op.path}` | `{op.permission}` |" not in DOC
    ]
    assert missing == []


def test_every_graphql_field_is_documented_with_its_permission():
    missing = [k for k, p in FIELD_PERMISSIONS.items() if f"| `{k}` | `{p}` |" not in DOC]
    assert missing == []
