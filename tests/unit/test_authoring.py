"""What a handler author meets first: error messages, the test helper's exports, the docs.

One test per finding of a newcomer who built a workflow from the docs alone; the runtime ones
(upstream results, stubbed HTTP, failure logs) are in tests/integration/test_authoring_runtime.py.
"""

import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from graphql import OperationDefinitionNode, parse, validate

from graphql_schema.schema import build_schema
from server.cli import main
from server.config import Settings
from server.domain.errors import TemplateInvalid
from server.domain.readiness import (
    FAILED_PERMANENTLY,
    REASON_CODES,
    RETRIES_EXHAUSTED,
    StepSnapshot,
    explain,
)
from server.domain.states import StepState, TaskState
from server.registry.definitions import load_definition

ROOT = Path(__file__).resolve().parents[2]
WORK = "tests.support.steps:Work"
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def write(tmp_path: Path, steps: str, version: str = "1.0.0") -> Path:
    path = tmp_path / "handler.yaml"
    path.write_text(
        f"name: demo\nnamespace_name: shapes\nversion: {version}\nstep_templates:\n{steps}"
    )
    return path


# --- (b) a permanent failure is not "no retry left" ----------------------------------------


def failed(attempts: int, retry_limit: int, retryable: bool = True) -> StepSnapshot:
    return StepSnapshot(
        "charge",
        StepState.ERROR,
        None,
        (),
        "card declined",
        attempts=attempts,
        retry_limit=retry_limit,
        retryable=retryable,
        error_class="CARD_DECLINED",
    )


def reason_of(step: StepSnapshot):
    reasons = explain([step], task_status=TaskState.ERROR, now=NOW, workers_alive=True)
    reason = reasons[step.name]
    assert reason is not None
    return reason


def test_a_permanent_error_on_the_first_of_three_attempts_says_failed_permanently() -> None:
    reason = reason_of(failed(attempts=1, retry_limit=3))
    assert reason.code == FAILED_PERMANENTLY in REASON_CODES
    assert reason.message == "failed permanently: CARD_DECLINED: card declined"
    assert reason_of(failed(attempts=1, retry_limit=3, retryable=False)).code == FAILED_PERMANENTLY


def test_a_failure_on_the_last_attempt_still_says_retries_exhausted() -> None:
    reason = reason_of(failed(attempts=3, retry_limit=3))
    assert reason.code == RETRIES_EXHAUSTED
    assert reason.message.startswith("failed with no retry left")


# --- (c) the test helper's errors come from server.testing ---------------------------------


def test_the_errors_a_test_helper_user_catches_are_importable_from_server_testing() -> None:
    import server.testing as testing
    from server.domain import errors

    assert testing.ValidationFailed is errors.ValidationFailed
    for name in ("InvalidTaskConfig", "HandlerNotFound", "TemplateInvalid", "PermanentError",
                 "RetryableError", "ValidationFailed"):  # fmt: skip
        assert name in testing.__all__ and getattr(testing, name) is getattr(errors, name)
    assert "ValidationFailed" in (testing.__doc__ or "")


# --- (d) the README's commands and the port of `make serve` --------------------------------


def test_make_serve_takes_a_port_and_host_and_the_readme_says_so() -> None:
    dry = subprocess.run(
        ["make", "-n", "serve", "PORT=8001", "HOST=0.0.0.0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "tasker serve --examples --host 0.0.0.0 --port 8001" in dry
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make setup" in readme and "make serve PORT=8001" in readme


# --- (e) every GraphQL document in docs/api.md is valid against the served schema ---------


def api_documents() -> list[str]:
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    return re.findall(r"```graphql\n(.*?)```", text, flags=re.S)


def test_every_graphql_operation_in_docs_api_validates_against_the_schema() -> None:
    schema = build_schema(Settings())._schema
    documents = api_documents()
    assert documents
    shown: set[str] = set()
    for source in documents:
        document = parse(source)
        errors = validate(schema, document)
        assert not errors, f"{source}\n{errors}"
        for op in document.definitions:
            if isinstance(op, OperationDefinitionNode):
                shown |= {
                    f"{op.operation.value}.{s.name.value}" for s in op.selection_set.selections
                }  # type: ignore[attr-defined]
    roots = {
        "query": schema.query_type,
        "mutation": schema.mutation_type,
        "subscription": schema.subscription_type,
    }
    every = {f"{kind}.{field}" for kind, t in roots.items() if t for field in t.fields}
    assert every - shown == set(), "docs/api.md shows no example for these operations"


# --- (i) `handlers validate` says what it checked ------------------------------------------


def test_handlers_validate_counts_handlers_and_steps(tmp_path: Path) -> None:
    steps = f"  - {{name: a, handler_class: '{WORK}'}}\n  - {{name: b, handler_class: '{WORK}'}}\n"
    path = write(tmp_path, steps)
    result = CliRunner().invoke(main, ["handlers", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert f"{path}: OK (1 handler, 2 steps)" in result.output


# --- (j) `version: 1.0` says to quote it ---------------------------------------------------


def test_a_numeric_version_says_to_quote_it(tmp_path: Path) -> None:
    path = write(tmp_path, f"  - {{name: a, handler_class: '{WORK}'}}\n", version="1.0")
    with pytest.raises(TemplateInvalid) as caught:
        load_definition(path)
    assert "'version' must be a string" in caught.value.message
    assert 'quote it, e.g. version: "1.0.0"' in caught.value.message


# --- (k) a typo in `type:` names the unknown type ------------------------------------------


def test_an_unknown_handler_config_type_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "  - {name: a, handler_config: {type: htp, url: 'http://x'}}\n")
    with pytest.raises(TemplateInvalid) as caught:
        load_definition(path)
    message = caught.value.message
    assert "unknown handler_config.type 'htp'" in message and "'http'" in message
    assert "missing required field" not in message


# --- (l) the README shows an absolute SQLite path, and it is one ---------------------------


def test_the_readme_shows_an_absolute_sqlite_url_that_tortoise_reads_as_absolute() -> None:
    from tortoise.backends.base.config_generator import expand_db_url

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    url = "sqlite:///var/lib/tasker/tasker.db"
    assert url in readme
    assert expand_db_url(url)["credentials"]["file_path"] == "/var/lib/tasker/tasker.db"
