"""The committed SDL, documentation on everything, and the permission table stay in step."""

from pathlib import Path

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLUnionType,
    parse,
)

from graphql_schema.permissions import (
    FIELD_PERMISSIONS,
    KNOWN_PERMISSIONS,
    permission_for,
    required_permissions,
)
from graphql_schema.plain_fields import method_of_source
from graphql_schema.schema import build_schema, sdl
from server.config import Settings

SNAPSHOT = Path(__file__).resolve().parents[2] / "graphql_schema" / "schema.graphql"
STRAWBERRY = build_schema(Settings())
SCHEMA = STRAWBERRY._schema
OURS = {
    name: t
    for name, t in SCHEMA.type_map.items()
    if not name.startswith("__") and name not in {"String", "Int", "Float", "Boolean", "ID"}
}


def test_committed_schema_matches_the_code():
    assert SNAPSHOT.read_text(encoding="utf-8") == sdl(), (
        "graphql_schema/schema.graphql is stale: run `make schema` (tasker schema) and review"
    )


@pytest.mark.parametrize(
    "operation",
    [
        "namespaces",
        "handler",
        "task",
        "tasks",
        "createTask",
        "updateTask",
        "cancelTask",
        "retryTask",
        "updateStep",
        "cancelStep",
        "retryStep",
        "resolveStep",
        "taskEvents",
        "namespaceEvents",
        "analytics",
        "health",
    ],
)
def test_design_operations_exist(operation):
    roots = [SCHEMA.query_type, SCHEMA.mutation_type, SCHEMA.subscription_type]
    assert any(operation in root.fields for root in roots if root)


def test_status_enums_have_the_design_values():
    values = ["PENDING", "IN_PROGRESS", "COMPLETE", "ERROR", "CANCELLED", "RESOLVED_MANUALLY"]
    for name in ("TaskStatus", "StepStatus", "TransitionStatus"):
        enum = SCHEMA.type_map[name]
        assert isinstance(enum, GraphQLEnumType) and list(enum.values) == values


def test_every_type_field_and_argument_has_a_description():
    missing = []
    for name, gql_type in OURS.items():
        if not gql_type.description:
            missing.append(name)
        if isinstance(gql_type, GraphQLObjectType | GraphQLInterfaceType | GraphQLInputObjectType):
            for field_name, field in gql_type.fields.items():
                if not field.description:
                    missing.append(f"{name}.{field_name}")
                for arg_name, arg in getattr(field, "args", {}).items():
                    if not arg.description:
                        missing.append(f"{name}.{field_name}({arg_name})")
    assert missing == []


def test_mutation_results_are_unions_of_the_object_and_error_types():
    error = SCHEMA.type_map["Error"]
    for field in SCHEMA.mutation_type.fields.values():
        union = field.type.of_type
        assert isinstance(union, GraphQLUnionType)
        objects, errors = [], []
        for member in union.types:
            (errors if error in member.interfaces else objects).append(member.name)
        assert len(objects) == 1 and errors


class TestPermissions:
    def test_every_root_field_names_its_permission(self):
        roots = [SCHEMA.query_type, SCHEMA.mutation_type, SCHEMA.subscription_type]
        unlisted = [
            f"{r.name}.{f}" for r in roots for f in r.fields if not permission_for(r.name, f)
        ]
        assert unlisted == []

    def test_the_table_names_real_fields_and_real_permissions(self):
        for key, permission in FIELD_PERMISSIONS.items():
            type_name, field_name = key.split(".")
            assert field_name in SCHEMA.type_map[type_name].fields, key
            assert permission in KNOWN_PERMISSIONS, (key, permission)

    def test_every_field_with_its_own_resolver_is_listed(self):
        # A resolver that is a method of its object alone (no info, so no loader or service:
        # `Step.name` reads the step's view) reads nothing the field above did not.
        resolved = set()
        for name in OURS:
            definition = STRAWBERRY.get_type_by_name(name)
            for field in getattr(definition, "fields", []):
                if getattr(field, "base_resolver", None) is not None:
                    graphql_name = STRAWBERRY.config.name_converter.get_graphql_name(field)
                    if method_of_source(SCHEMA.get_type(name).fields[graphql_name]) is None:
                        resolved.add(f"{name}.{graphql_name}")
        assert "Step.name" not in resolved and "Step.blockedReason" in resolved
        assert "Task.steps" in resolved
        # Plus a handler's detail, which is plain data but needs more than the listing does.
        detail = {"Handler.contextSchema", "Handler.stepTemplates", "Handler.dependencyGraph"}
        assert resolved == set(FIELD_PERMISSIONS) - detail

    def test_the_document_walker_sees_aliases_and_fragments(self):
        document = parse("""
            query { mine: tasks { edges { node { ...T } } } }
            fragment T on Task { s: steps { ... on Step { blockedReason { code } } } }
            mutation { cancelTask(id: "x") { __typename ... on Task { steps { id } } } }
        """)
        assert required_permissions(SCHEMA, document) == {
            "tasker.task:index",
            "tasker.workflow_step:index",
            "tasker.workflow_step:show",
            "tasker.task:cancel",
        }

    def test_plain_fields_need_nothing_more(self):
        assert required_permissions(SCHEMA, parse('{ task(id: "x") { id status } }')) == {
            "tasker.task:show"
        }
