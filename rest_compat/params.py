"""Request inputs as pydantic models: query strings, headers and JSON bodies.

The pipeline validates every request against these before an endpoint runs, and the OpenAPI
document is generated from them. Constraints are stated in the schema wherever the server
enforces them, so a request the document calls valid is never refused as invalid.

The rules on content (no NUL, lengths of stored strings, JSON numbers, depth and size) are
the core's (`server.domain.inputs`), enforced by the services for every surface alike; here
they are only documented (`_documented`), quoting the same constants.
"""

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from server.domain.inputs import MAX_DELAY_SECONDS, MAX_KEY_LENGTH, MAX_REASON_LENGTH, MAX_TAGS
from server.domain.states import TaskState
from server.domain.versions import SEMVER, is_semver
from server.services.steps import MAX_RETRY_LIMIT

MAX_CURSOR = 2**63 - 1
MAX_PAGE = 1_000_000
NO_NUL_PATTERN = r"^[^\u0000]*$"
SEMVER_PATTERN = f"^(?:{SEMVER.pattern})$"


def _semver(value: str) -> str:
    if not is_semver(value):
        raise ValueError("must be a valid semantic version")
    return value


def _query_int(value: Any) -> Any:
    # Lax int parsing would take "1.0" or " 1"; a query integer is digits with an optional sign.
    if isinstance(value, str) and not value.lstrip("-").isdigit():
        raise ValueError("must be an integer")
    return value


def _whole_number(value: Any) -> Any:
    # JSON Schema counts 2.0 as an integer; strict pydantic would not.
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _query_bool(value: Any) -> Any:
    if isinstance(value, str):
        if value.lower() not in ("true", "false"):
            raise ValueError("must be true or false")
        return value.lower() == "true"
    return value


def _documented(**schema: Any) -> Any:
    """A rule the services enforce, stated in the OpenAPI document only."""
    return Field(json_schema_extra={"pattern": NO_NUL_PATTERN, **schema})


Text = Annotated[str, _documented()]
Key = Annotated[str, _documented(maxLength=MAX_KEY_LENGTH)]
Reason = Annotated[str, _documented(maxLength=MAX_REASON_LENGTH)]
Version = Annotated[
    str,
    AfterValidator(_semver),
    Field(
        max_length=64,
        description="A semantic version, e.g. 2.1.0",
        json_schema_extra={"pattern": SEMVER_PATTERN},
    ),
]
QueryInt = Annotated[int, BeforeValidator(_query_int)]
# Constraints go before the validator, or the JSON Schema gets raw `ge`/`le` keys.
Cursor = Annotated[int, Field(ge=0, le=MAX_CURSOR), BeforeValidator(_query_int)]
QueryBool = Annotated[bool, BeforeValidator(_query_bool)]

# Free-form JSON is `{}` (any value) in OpenAPI 3.1. A recursive schema that also said "no NUL
# in any string" crashed openapi-spec-validator, made openapi-python-client drop the operations
# using it and made datamodel-code-generator read every integer as a float. The services still
# refuse NUL at any depth (`server.domain.inputs`); the description says so.
FREE_FORM = "Any JSON value; no string or key in it may contain a NUL character"
JsonValue = Annotated[Any, WithJsonSchema({"description": FREE_FORM})]
JsonObject = Annotated[
    dict[str, Any],
    WithJsonSchema(
        {
            "type": "object",
            "description": f"A JSON object. {FREE_FORM}",
            "propertyNames": {"pattern": NO_NUL_PATTERN},
        }
    ),
]


class Query(BaseModel):
    """Query-string parameters (and headers): strings in, converted leniently to types.

    Frozen: a parsed query string is shared by every request that sends the same one."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class Body(BaseModel):
    """A JSON request body: types are checked strictly, unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", strict=True)

    body_required: ClassVar[bool] = True
    """Whether a request must carry a body. A missing body where one is required (a PATCH
    with nothing in it) is refused; where it is not, it reads as `{}`."""


class HandlerQuery(Query):
    version: Version | None = Field(None, description="Defaults to the latest version by semver")


class LimitsQuery(Query):
    handler: Text | None = Field(
        None,
        max_length=257,
        description="`namespace/name` for one handler, `namespace` for a namespace's; "
        "default every handler",
    )


class TaskListQuery(Query):
    namespace: Text | None = None
    name: Text | None = None
    version: Text | None = None
    status: TaskState | None = None
    page: QueryInt = Field(1, ge=1, le=MAX_PAGE, description="Page number, from 1")
    per_page: QueryInt = Field(25, ge=1, description="Items per page (default 25, at most 100)")


class ItemsQuery(Query):
    after: Cursor | None = Field(
        None, description="Only items after this index (a page's next_after)"
    )
    first: QueryInt = Field(
        100, ge=1, le=1000, description="Items per page (default 100, at most 1000)"
    )


class TaskShowQuery(Query):
    include_dependencies: QueryBool = Field(
        False, description="Add the steps and the dependency analysis"
    )


class DiagramQuery(Query):
    format: Literal["json", "html"] = Field(
        "json", description="`json` (the diagram) or `html` (a page drawing it with Mermaid)"
    )


class EventsQuery(Query):
    after: Cursor | None = Field(None, description="Replay only events after this cursor")


class EventsHeaders(Query):
    last_event_id: Cursor | None = Field(
        None,
        alias="Last-Event-ID",
        description="Resume after this event id (sent by EventSource on reconnect)",
    )


class CreateTaskHeaders(Query):
    idempotency_key: Key | None = Field(
        None,
        alias="Idempotency-Key",
        min_length=1,
        description="Repeating a key returns the task it created (200); "
        "reusing it with a different request is a conflict (409)",
    )


class CreateTaskBody(Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "process_payment",
                    "namespace": "payments",
                    "version": "2.1.0",
                    "context": {
                        "payment_id": 12345,
                        "amount": 99.99,
                        "currency": "USD",
                        "customer_id": 67890,
                    },
                }
            ]
        }
    )

    name: Text = Field(min_length=1, max_length=128, description="Handler name")
    namespace: Text = Field(min_length=1, max_length=128)
    version: Version | None = Field(None, description="Defaults to the latest version")
    context: JsonObject = Field(
        default_factory=dict, description="Checked against the handler's context schema"
    )
    initiator: Key | None = None
    source_system: Key | None = None
    reason: Reason | None = None
    tags: Annotated[list[Key], Field(json_schema_extra={"maxItems": MAX_TAGS})] = Field(
        default_factory=list
    )
    bypass_steps: list[Text] = Field(
        default_factory=list, description="Skippable steps to mark resolved at once"
    )
    # Checked by the service (`server.domain.inputs.start_time`), not here, so that a bad
    # value is the same 422 and code on REST as on GraphQL.
    run_at: Text | None = Field(
        None,
        description="Start no earlier than this ISO 8601 time, with a time zone (e.g. "
        "2027-01-31T09:00:00Z); a past time starts at once. Not with delay_seconds",
        json_schema_extra={"format": "date-time"},
    )
    delay_seconds: float | None = Field(
        None,
        description="Start this many seconds after creation "
        f"(0 to {MAX_DELAY_SECONDS}). Not with run_at",
        json_schema_extra={"minimum": 0, "maximum": MAX_DELAY_SECONDS},
    )
    # Checked by the service (`server.services.debounce`), like run_at.
    debounce_key: Text | None = Field(
        None,
        description="Collapse creations with this key (a context path such as "
        "context.document_id, or a constant) within debounce_seconds into one task, started "
        "debounce_seconds after the last of them with its context (200 for a creation that "
        "joins). Overrides the handler's debounce",
    )
    debounce_seconds: float | None = Field(
        None,
        description="The debounce window in seconds, with debounce_key",
        json_schema_extra={"exclusiveMinimum": 0, "maximum": MAX_DELAY_SECONDS},
    )
    priority: int | None = Field(
        None,
        description="1 (low) .. 3 (high); default the handler's priority (else 2). Orders "
        "the steps waiting for a concurrency slot",
        json_schema_extra={"minimum": 1, "maximum": 3},
    )


class UpdateTaskBody(Body):
    reason: Reason | None = None
    tags: Annotated[list[Key], Field(json_schema_extra={"maxItems": MAX_TAGS})] | None = None


class UpdateStepBody(Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"retry_limit": 5, "inputs": {"timeout": 30, "custom_param": "value"}}]
        }
    )

    retry_limit: (
        Annotated[int, Field(ge=0, le=MAX_RETRY_LIMIT), BeforeValidator(_whole_number)] | None
    ) = None
    inputs: JsonValue = Field(None, description="Replaces the step's inputs when present")


class ResolveStepBody(Body):
    body_required = False  # resolving needs nothing: the results and the reason are optional

    results: JsonValue = Field(None, description="Recorded as the step's results")
    reason: Reason | None = None


class SignalBody(Body):
    body_required = False  # a bare POST is an approval with an empty payload

    payload: JsonObject | None = Field(
        None, description="Becomes the waiting step's results (default {})"
    )
    signal_id: Annotated[str, _documented(minLength=1, maxLength=MAX_KEY_LENGTH)] | None = Field(
        None,
        description="The sender's id for this delivery: the same id twice is delivered once "
        "(the repeat answers 200 with the first delivery)",
    )


class RerunBody(Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"from_step": "charge_card", "inputs": {"charge_card": {"retry": True}}}]
        }
    )

    from_step: Text = Field(
        description="The first step to run again; its descendants re-run too",
        json_schema_extra={"minLength": 1},
    )
    context: JsonObject | None = Field(None, description="Replaces the task's context")
    inputs: dict[str, JsonValue] | None = Field(
        None, description="Replaces the inputs of the named steps (from_step or downstream)"
    )


class BulkFilterBody(Body):
    namespace: Text | None = None
    name: Text | None = None
    version: Text | None = None
    status: TaskState | None = None
    created_after: Text | None = Field(None, json_schema_extra={"format": "date-time"})
    created_before: Text | None = Field(None, json_schema_extra={"format": "date-time"})
    ids: list[Text] | None = Field(None, description="Only these task ids")


class BulkBody(Body):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"filter": {"namespace": "payments", "status": TaskState.ERROR.value}}]
        }
    )

    filter: BulkFilterBody = Field(default_factory=lambda: BulkFilterBody.model_validate({}))
    limit: Annotated[int, Field(ge=1, le=10000), BeforeValidator(_whole_number)] | None = Field(
        None, description="Most tasks per call (default 1000, at most 10000)"
    )
    cursor: Text | None = Field(
        None,
        description="`next_cursor` of the previous call (404 once that task is gone)",
        json_schema_extra={"format": "uuid"},
    )


class BulkRerunBody(BulkBody):
    from_step: Text = Field(
        description="The step every matched task re-runs from", json_schema_extra={"minLength": 1}
    )
    context: JsonObject | None = Field(None, description="Replaces each task's context")
