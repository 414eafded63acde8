"""The PostgreSQL store's statements (a step's with limits too) write only moves the
allowed-move tables allow.

Read from the SQL text itself: every status the statements write (an UPDATE's `SET status`,
a history row's from/to) is a `$<move>_to` / `$<move>_from` parameter, and each (from, to)
pair is checked against `server.domain.states`. No status is spelled in the SQL.
"""

import re

import pytest

from server.domain.errors import InvalidTransition
from server.domain.readiness import CLAIMABLE_TASK_STATES, RETRYING, StepSnapshot, is_ready
from server.domain.states import StepState, TaskState, can_move_step, can_move_task
from server.engine import pg_complete, pg_flow
from server.engine.pg_sql import Move, Statement
from server.engine.pg_store import CLAIM_STATEMENT, COMPLETE_STATEMENT

STATEMENTS = {
    "claim": CLAIM_STATEMENT,
    "complete": COMPLETE_STATEMENT,
    # A step with limits has its own (`server.engine.pg_flow`), checked the same way.
    "limited claim": pg_flow.CLAIM_STATEMENT,
    "limited complete": pg_flow.COMPLETE_STATEMENT,
    # Completions written together (`server.engine.pg_complete`), with limits or without.
    "complete many": pg_complete.COMPLETE_MANY_STATEMENT,
    "limited complete many": pg_flow.COMPLETE_MANY_STATEMENT,
}
STATUSES = {s.value for s in TaskState} | {s.value for s in StepState}


def written_pairs(statement: Statement) -> set[tuple[str, str, str]]:
    """(entity, from, to) of every history row the statement can insert."""
    pairs = set()
    for insert in statement.text.split("INSERT INTO tasker_transitions")[1:]:
        select = insert.split("RETURNING")[0]
        for source, target in re.findall(r"\$(\w+)_from::text, \$(\w+)_to::text", select):
            assert source == target, f"history row from {source} to {target}"
            move = statement.moves[source]
            pairs.add((move.entity, move.source, move.target))
    return pairs


def set_targets(statement: Statement) -> list[str]:
    """The parameters the statement's UPDATEs assign to a status column."""
    direct = re.findall(r"SET status = \$(\w+)", statement.text)
    cased = re.findall(r"status = CASE WHEN [^$]*\$\w+::text\s+THEN \$(\w+)", statement.text)
    return direct + cased


@pytest.mark.parametrize("name", STATEMENTS)
def test_no_status_is_spelled_in_the_sql(name):
    text = STATEMENTS[name].text
    quoted = set(re.findall(r"'(\w+)'", text))
    assert quoted & STATUSES == set()


@pytest.mark.parametrize("name", STATEMENTS)
def test_every_status_written_is_the_target_of_an_allowed_move(name):
    statement = STATEMENTS[name]
    targets = set_targets(statement)
    assert targets, "the statement writes a status"
    for param in targets:
        assert param.endswith("_to"), param
        assert param.removesuffix("_to") in statement.moves
    pairs = written_pairs(statement)
    assert {(m.entity, m.source, m.target) for m in statement.moves.values()} == pairs
    for entity, source, target in pairs:
        if entity == "step":
            assert can_move_step(StepState(source), StepState(target)), (source, target)
        else:
            assert can_move_task(TaskState(source), TaskState(target)), (source, target)


def test_the_claim_follows_the_readiness_rules():
    moves, fixed = CLAIM_STATEMENT.moves, CLAIM_STATEMENT.fixed
    assert sorted(fixed["claimable_tasks"]) == sorted(s.value for s in CLAIMABLE_TASK_STATES)
    assert moves["retry"].source_state is RETRYING
    # A due retry is claimed through pending, as two recorded moves.
    assert moves["retry"].target == moves["claim"].source == StepState.PENDING
    assert moves["claim"].target == StepState.IN_PROGRESS


def test_the_completion_dispatches_what_is_ready():
    state = StepState(COMPLETE_STATEMENT.fixed["ready_state"])
    assert is_ready(StepSnapshot("c", state, None, ()), {})


def test_a_move_the_tables_refuse_cannot_be_built():
    with pytest.raises(InvalidTransition):
        Move("step", StepState.COMPLETE, StepState.PENDING)
