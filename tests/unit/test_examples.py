"""The bundled example catalogue reproduces the seed, and every example step handler works."""

import asyncio
import inspect
import itertools
import json
import time
from typing import Any
from uuid import UUID, uuid4

import pytest

from server.domain.errors import PermanentError, RetryableError, ValidationFailed
from server.domain.templates import HandlerTemplate
from server.handlers.base import StepContext
from server.registry.handler_registry import HandlerRegistry

REGISTRY = HandlerRegistry.load([], examples=True)
TASK_ID = UUID("00000000-0000-4000-8000-000000000001")

SEED_NAMESPACES = [
    ("payments", "Payment processing workflows",
     ("process_payment", "refund_payment", "validate_card", "process_subscription",
      "cancel_subscription")),
    ("inventory", "Inventory management workflows",
     ("update_stock", "process_order", "check_availability")),
    ("notifications", "Notification and messaging workflows",
     ("send_email", "send_sms", "push_notification", "alert_admin")),
]  # fmt: skip

# name, description, handler class, depends_on_step, retryable, retry limit, skippable, events
SEED_PROCESS_PAYMENT = [
    ("validate_payment", "Validate payment details and customer information",
     "ValidatePaymentHandler", None, False, 0, False, ()),
    ("charge_card", "Process payment through payment gateway",
     "ChargeCardHandler", "validate_payment", True, 3, False, ("payment.gateway.charged",)),
    ("update_order", "Update order status after successful payment",
     "UpdateOrderHandler", "charge_card", True, 2, False, ()),
    ("send_confirmation", "Send payment confirmation email to customer",
     "SendConfirmationHandler", "update_order", True, 5, True, ("notification.email.sent",)),
]  # fmt: skip

SAMPLE_CONTEXTS: dict[tuple[str, str], dict[str, Any]] = {
    ("payments", "process_payment"):
        {"payment_id": 12345, "amount": 99.99, "currency": "USD", "customer_id": 67890},
    ("payments", "refund_payment"): {"payment_id": 12345, "refund_amount": 25.0},
    ("payments", "validate_card"): {"card_number": "4242 4242 4242 4242", "customer_id": 7},
    ("payments", "process_subscription"): {"customer_id": 67890, "plan": "pro"},
    ("payments", "cancel_subscription"): {"subscription_id": 4411, "customer_id": 67890},
    ("inventory", "update_stock"): {"sku": "WIDGET-1", "quantity_change": -3},
    ("inventory", "process_order"):
        {"order_id": 501, "items": [{"sku": "WIDGET-1", "quantity": 2},
                                    {"sku": "GADGET-2", "quantity": 1}]},
    ("inventory", "check_availability"):
        {"items": [{"sku": "WIDGET-1", "quantity": 40}, {"sku": "GADGET-2"}]},
    ("notifications", "send_email"): {"recipient": "ada@example.com", "template": "welcome"},
    ("notifications", "send_sms"): {"phone_number": "+14155550123", "message": "Shipped"},
    ("notifications", "push_notification"): {"customer_id": 67890, "title": "Shipped"},
    ("notifications", "alert_admin"): {"message": "Queue depth high", "severity": "critical"},
}  # fmt: skip


def run_step(
    template: HandlerTemplate,
    name: str,
    context: Any,
    *,
    attempt: int = 1,
    parent_results: dict[str, Any] | None = None,
    task_id: UUID = TASK_ID,
) -> Any:
    """Run one step the way a worker would, calling async handlers through asyncio.run."""
    spec = template.step(name)
    step = StepContext(
        task_id=task_id,
        name=name,
        attempt=attempt,
        context=context,
        config=spec.handler_config,
        parent_results=parent_results or {},
        namespace=template.namespace,
        handler_name=template.name,
        handler_version=template.version,
        timeout_seconds=spec.timeout_seconds,
    )
    outcome = REGISTRY.step_handler(spec.handler_class).process(step)
    return asyncio.run(outcome) if inspect.iscoroutine(outcome) else outcome


def run_workflow(
    template: HandlerTemplate, context: Any, task_id: UUID = TASK_ID
) -> dict[str, Any]:
    """Every step in execution order, each given its parents' results."""
    results: dict[str, Any] = {}
    for name in template.graph.execution_order:
        parents = {p: results[p] for p in template.step(name).depends_on}
        results[name] = run_step(template, name, context, parent_results=parents, task_id=task_id)
    return results


def test_namespaces_descriptions_and_handler_names_match_the_seed() -> None:
    listed = [(ns.name, ns.description, ns.handler_names) for ns in REGISTRY.namespaces()]

    assert listed == SEED_NAMESPACES
    assert [len(REGISTRY.handlers(ns)) for ns, _, _ in SEED_NAMESPACES] == [5, 3, 4]


def test_payments_handlers_match_the_seed_listing() -> None:
    summary = [
        (t.name, t.version, t.description, [s.name for s in t.steps])
        for t in REGISTRY.handlers("payments")[:2]
    ]

    assert summary == [
        ("process_payment", "2.1.0", "Process customer payment with validation and confirmation",
         ["validate_payment", "charge_card", "update_order", "send_confirmation"]),
        ("refund_payment", "1.5.0", "Process customer refund with validation",
         ["validate_refund", "process_refund", "notify_customer"]),
    ]  # fmt: skip


def test_process_payment_steps_match_the_seed() -> None:
    template = REGISTRY.get("payments", "process_payment", "2.1.0")

    steps = [
        (s.name, s.description, s.handler_class.rpartition(":")[2], s.depends_on_step,
         s.retryable, s.retry_limit, s.skippable, s.custom_events)
        for s in template.steps
    ]  # fmt: skip

    assert steps == SEED_PROCESS_PAYMENT
    assert all(s.handler_class.startswith("server.examples.handlers.") for s in template.steps)


def test_process_payment_dependency_graph_matches_the_seed() -> None:
    graph = REGISTRY.get("payments", "process_payment").graph
    order = ("validate_payment", "charge_card", "update_order", "send_confirmation")

    assert graph.nodes == order
    assert graph.edges == tuple(itertools.pairwise(order))
    assert graph.execution_order == order


def test_the_latest_send_email_is_chosen_by_semver() -> None:
    assert REGISTRY.versions("notifications", "send_email") == ["1.10.0", "1.9.0"]
    assert REGISTRY.get("notifications", "send_email").version == "1.10.0"
    assert len(REGISTRY.get("notifications", "send_email", "1.9.0").steps) == 2


def test_the_catalogue_has_a_diamond_and_a_parallel_fan_in() -> None:
    order = REGISTRY.get("inventory", "process_order").graph
    card = REGISTRY.get("payments", "validate_card").graph

    assert set(order.edges) == {
        ("validate_order", "reserve_stock"), ("validate_order", "calculate_shipping"),
        ("reserve_stock", "create_shipment"), ("calculate_shipping", "create_shipment"),
    }  # fmt: skip
    assert card.roots() == ("check_card_format", "screen_fraud")
    assert card.parents("authorize_card_check") == ("check_card_format", "screen_fraud")


def test_every_example_has_a_context_schema_and_two_to_five_steps() -> None:
    for template in REGISTRY.all():
        assert template.context_schema is not None, template.full_name
        assert 2 <= len(template.steps) <= 5, template.full_name


def test_process_payment_context_is_validated_field_by_field() -> None:
    template = REGISTRY.get("payments", "process_payment")

    with pytest.raises(ValidationFailed) as caught:
        REGISTRY.validate_context(template, {"amount": 0, "currency": 3})

    assert caught.value.details is not None
    assert set(caught.value.details) == {"context.payment_id", "context.amount", "context.currency"}


def test_production_charges_through_the_live_gateway() -> None:
    production = HandlerRegistry.load([], examples=True, environment="production")

    live = production.get("payments", "process_payment").step("charge_card")
    sandbox = REGISTRY.get("payments", "process_payment").step("charge_card")

    assert live.handler_config == {"gateway": "live"}
    assert sandbox.handler_config == {"gateway": "sandbox"}


@pytest.mark.parametrize("template", REGISTRY.all(), ids=lambda t: t.full_name)
def test_every_example_workflow_runs_on_its_sample_context(template: HandlerTemplate) -> None:
    context = SAMPLE_CONTEXTS[(template.namespace, template.name)]
    REGISTRY.validate_context(template, context)

    results = run_workflow(template, context)

    assert list(results) == list(template.graph.execution_order)
    for name, result in results.items():
        assert isinstance(result, dict) and result, name
        json.dumps(result)


def test_example_results_are_derived_from_the_context() -> None:
    payment = REGISTRY.get("payments", "process_payment")
    context = SAMPLE_CONTEXTS[("payments", "process_payment")]

    first = run_workflow(payment, context)
    retried = run_workflow(payment, context, task_id=uuid4())
    other = run_workflow(payment, {**context, "amount": 5.0})

    assert first["charge_card"]["charge_id"] == retried["charge_card"]["charge_id"]
    assert first["charge_card"]["charge_id"] != other["charge_card"]["charge_id"]
    assert first["charge_card"]["validation_id"] == first["validate_payment"]["validation_id"]
    assert first["update_order"]["charge_id"] == first["charge_card"]["charge_id"]

    order = run_workflow(REGISTRY.get("inventory", "process_order"),
                         SAMPLE_CONTEXTS[("inventory", "process_order")])  # fmt: skip
    assert order["create_shipment"]["reservation_id"] == order["reserve_stock"]["reservation_id"]
    assert order["create_shipment"]["carrier"] == order["calculate_shipping"]["carrier"]


@pytest.mark.parametrize(("severity", "paged"), [("critical", True), ("info", False)])
def test_only_critical_alerts_page_on_call(severity: str, paged: bool) -> None:
    context = {"message": "disk full", "severity": severity}

    results = run_workflow(REGISTRY.get("notifications", "alert_admin"), context)

    assert results["notify_on_call"]["paged"] is paged
    assert results["record_alert"]["recorded_steps"] == ["notify_on_call", "post_to_channel"]


@pytest.mark.parametrize(
    ("handler", "step", "context", "code"),
    [
        (("payments", "process_payment"), "validate_payment", {"amount": 5}, "INVALID_CONTEXT"),
        (("payments", "validate_card"), "check_card_format",
         {"card_number": "4242"}, "CARD_INVALID"),
        (("payments", "process_subscription"), "validate_plan",
         {"customer_id": 1, "plan": "gold"}, "UNKNOWN_PLAN"),
        (("inventory", "process_order"), "reserve_stock",
         {"order_id": 1, "items": [{"sku": "GADGET-2", "quantity": 40}]}, "OUT_OF_STOCK"),
    ],
)  # fmt: skip
def test_example_handlers_reject_bad_input_permanently(
    handler: tuple[str, str], step: str, context: dict[str, Any], code: str
) -> None:
    with pytest.raises(PermanentError) as caught:
        run_step(REGISTRY.get(*handler), step, context)

    assert caught.value.code == code


PAYMENT = REGISTRY.get("payments", "process_payment")


def test_simulate_failures_fails_the_first_n_attempts_of_that_step_only() -> None:
    context = {**SAMPLE_CONTEXTS[("payments", "process_payment")],
               "simulate_failures": {"charge_card": 2}}  # fmt: skip

    for attempt in (1, 2):
        with pytest.raises(RetryableError, match="simulated failure of charge_card"):
            run_step(PAYMENT, "charge_card", context, attempt=attempt)

    assert run_step(PAYMENT, "charge_card", context, attempt=3)["status"] == "captured"
    assert run_step(PAYMENT, "validate_payment", context)["payment_id"] == 12345


@pytest.mark.parametrize("target", ["update_order", ["charge_card", "update_order"]])
def test_simulate_permanent_failure_fails_the_named_steps(target: str | list[str]) -> None:
    context = {"payment_id": 1, "simulate_permanent_failure": target}

    with pytest.raises(PermanentError) as caught:
        run_step(PAYMENT, "update_order", context, attempt=4)

    assert caught.value.code == "SIMULATED_FAILURE"
    assert run_step(PAYMENT, "validate_payment", context)["payment_id"] == 1


def test_simulate_sleep_delays_the_named_step() -> None:
    context = {"payment_id": 1, "simulate_sleep": {"validate_payment": 0.05}}

    started = time.monotonic()
    run_step(PAYMENT, "validate_payment", context)

    assert time.monotonic() - started >= 0.05


@pytest.mark.parametrize(
    "context",
    [{"simulate_failures": {"validate_payment": "twice"}}, {"simulate_sleep": 3},
     {"simulate_failures": {"validate_payment": -1}}],
)  # fmt: skip
def test_a_malformed_simulation_fails_the_step_permanently(context: dict[str, Any]) -> None:
    with pytest.raises(PermanentError) as caught:
        run_step(PAYMENT, "validate_payment", {"payment_id": 1, **context})

    assert caught.value.code == "INVALID_SIMULATION"
