"""The completion of a step with limits (`server.engine.pg_flow`) frees a handler's slot when
its task is no longer active. Its moves, and its claim's, are checked with the unlimited
statements' (tests/unit/test_pg_store_moves.py)."""

from server.domain.states import TaskState
from server.engine.pg_flow import COMPLETE_STATEMENT


def test_the_completion_frees_the_handler_slot_only_of_a_task_no_longer_active():
    active = set(COMPLETE_STATEMENT.fixed["active_tasks"])
    assert active == {TaskState.PENDING.value, TaskState.IN_PROGRESS.value}
