"""The single statements of a step with limits (`server.engine.pg_flow`) write only moves the
allowed-move tables allow, and spell no status in their SQL: the same checks as the
unlimited statements' (tests/unit/test_pg_store_moves.py)."""

import re

import pytest

from server.domain.states import StepState, TaskState, can_move_step, can_move_task
from server.engine.pg_flow import CLAIM_STATEMENT, COMPLETE_STATEMENT
from tests.unit.test_pg_store_moves import STATUSES, set_targets, written_pairs

STATEMENTS = {"claim": CLAIM_STATEMENT, "complete": COMPLETE_STATEMENT}


@pytest.mark.parametrize("name", STATEMENTS)
def test_no_status_is_spelled_in_the_sql(name):
    quoted = set(re.findall(r"'(\w+)'", STATEMENTS[name].text))
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


def test_the_completion_frees_the_handler_slot_only_of_a_task_no_longer_active():
    active = set(COMPLETE_STATEMENT.fixed["active_tasks"])
    assert active == {TaskState.PENDING.value, TaskState.IN_PROGRESS.value}
