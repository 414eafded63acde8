"""Task creation: one transaction, idempotency, validation, bypassed steps."""

import pytest

from server.domain.errors import Conflict, HandlerNotFound, NamespaceNotFound, ValidationFailed
from server.domain.states import StepState, TaskState
from server.domain.views import CreateTask, TaskFilter
from tests.support.waiting import wait_for_task


async def count(services) -> int:
    return (await services.tasks.list_tasks(TaskFilter())).total_count


async def test_creation_writes_steps_edges_and_history(services):
    task, created = await services.tasks.create_task(
        CreateTask(namespace="payments", name="process_payment", context={"payment_id": 1})
    )
    assert created and task.status is TaskState.PENDING
    assert task.full_name == "payments.process_payment@2.1.0"
    steps = await services.steps.list_steps(task.id)
    assert [s.name for s in steps] == [
        "validate_payment",
        "charge_card",
        "update_order",
        "send_confirmation",
    ]
    assert steps[1].parents == ("validate_payment",) and steps[1].children == ("update_order",)
    assert (steps[0].retryable, steps[0].retry_limit) == (False, 0)
    assert (steps[3].retry_limit, steps[3].skippable) == (5, True)
    history = await services.steps.transitions([s.id for s in steps])
    assert all(h[0].to_status == "pending" for h in history.values())


async def test_same_idempotency_key_returns_the_original_and_a_different_body_conflicts(services):
    req = CreateTask(
        namespace="payments",
        name="process_payment",
        context={"payment_id": 9},
        idempotency_key="order-9",
    )
    first, created = await services.tasks.create_task(req)
    again, created_again = await services.tasks.create_task(req)
    assert created and not created_again and again.id == first.id
    with pytest.raises(Conflict):
        await services.tasks.create_task(
            CreateTask(
                namespace="payments",
                name="process_payment",
                context={"payment_id": 10},
                idempotency_key="order-9",
            )
        )
    assert await count(services) == 1


async def test_context_failing_the_schema_is_rejected_per_field_and_nothing_is_written(services):
    with pytest.raises(ValidationFailed) as info:
        await services.tasks.create_task(
            CreateTask(
                namespace="payments", name="process_payment", context={"payment_id": "not-a-number"}
            )
        )
    assert "context.payment_id" in info.value.details
    with pytest.raises(ValidationFailed) as missing:
        await services.tasks.create_task(
            CreateTask(namespace="payments", name="process_payment", context={})
        )
    assert "context.payment_id" in missing.value.details
    assert await count(services) == 0


async def test_unknown_handler_namespace_and_version_are_typed_errors(services):
    with pytest.raises(NamespaceNotFound):
        await services.tasks.create_task(CreateTask(namespace="nope", name="x", context={}))
    with pytest.raises(HandlerNotFound):
        await services.tasks.create_task(CreateTask(namespace="payments", name="x", context={}))
    with pytest.raises(HandlerNotFound):
        await services.tasks.create_task(
            CreateTask(
                namespace="payments",
                name="process_payment",
                version="9.9.9",
                context={"payment_id": 1},
            )
        )
    with pytest.raises(ValidationFailed) as bad:
        await services.tasks.create_task(
            CreateTask(
                namespace="payments",
                name="process_payment",
                version="2.1",
                context={"payment_id": 1},
            )
        )
    assert "version" in bad.value.details


async def test_only_skippable_steps_can_be_bypassed(services):
    with pytest.raises(ValidationFailed) as info:
        await services.tasks.create_task(
            CreateTask(
                namespace="payments",
                name="process_payment",
                context={"payment_id": 1},
                bypass_steps=("charge_card",),
            )
        )
    assert info.value.details == {"bypass_steps": ["step 'charge_card' is not skippable"]}


async def test_a_bypassed_step_counts_as_resolved_and_the_task_completes(engine):
    task, _ = await engine.tasks.create_task(
        CreateTask(
            namespace="payments",
            name="process_payment",
            context={"payment_id": 5},
            bypass_steps=("send_confirmation",),
        )
    )
    assert (await wait_for_task(engine, task.id)).status is TaskState.COMPLETE
    last = await engine.steps.get_step(task.id, "send_confirmation")
    assert last.status is StepState.RESOLVED_MANUALLY
