"""Example step handlers of the `payments` namespace: payments, refunds, cards, subscriptions.

Nothing here talks to a real gateway; each step derives plausible, repeatable results from the
task context and its parents' results.
"""

import hashlib
from typing import Any

from server.domain.errors import PermanentError
from server.examples.handlers.common import (
    ExampleHandler,
    context_of,
    number,
    parent,
    require_int,
    stable_id,
    text,
)
from server.handlers.base import StepContext

PLAN_PRICES = {"basic": 9.0, "pro": 29.0, "enterprise": 99.0}
"""Monthly price of each subscription plan."""


class ValidatePaymentHandler(ExampleHandler):
    """Checks the payment request and fixes its amount and currency."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Validate payment_id, amount and currency."""
        payment_id = require_int(step, "payment_id")
        amount = number(step, "amount", 0.0)
        if amount < 0:
            raise PermanentError("amount must not be negative", code="INVALID_AMOUNT")
        return {
            "validation_id": stable_id("val", step.task_id, payment_id),
            "payment_id": payment_id,
            "amount": amount,
            "currency": text(step, "currency", "USD").upper(),
            "customer_id": context_of(step).get("customer_id"),
        }


class ChargeCardHandler(ExampleHandler):
    """Captures the validated amount; the charge id depends only on payment and amount."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Charge the card through the configured gateway (`handler_config.gateway`)."""
        validation = parent(step, "validate_payment")
        payment_id = require_int(step, "payment_id")
        amount = validation.get("amount", number(step, "amount", 0.0))
        return {
            "charge_id": stable_id("ch", payment_id, amount),
            "status": "captured",
            "amount": amount,
            "currency": validation.get("currency", text(step, "currency", "USD")),
            "gateway": step.config.get("gateway", "sandbox"),
            "validation_id": validation.get("validation_id"),
        }


class UpdateOrderHandler(ExampleHandler):
    """Marks the order paid."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Record the charge on the order (the order id defaults to the payment id)."""
        payment_id = require_int(step, "payment_id")
        return {
            "order_id": context_of(step).get("order_id", payment_id),
            "order_status": "paid",
            "charge_id": parent(step, "charge_card").get("charge_id"),
        }


class SendConfirmationHandler(ExampleHandler):
    """Emails the customer a payment confirmation."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Queue the confirmation email."""
        payment_id = require_int(step, "payment_id")
        customer = context_of(step).get("customer_id", "unknown")
        return {
            "email_id": stable_id("eml", step.task_id, payment_id),
            "recipient": text(step, "customer_email", f"customer-{customer}@example.com"),
            "template": "payment_confirmation",
            "order_status": parent(step, "update_order").get("order_status"),
        }


class ValidateRefundHandler(ExampleHandler):
    """Checks that the refund names a payment and a positive amount."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Validate payment_id and refund_amount."""
        payment_id = require_int(step, "payment_id")
        amount = number(step, "refund_amount", 0.0)
        if amount <= 0:
            raise PermanentError("refund_amount must be positive", code="INVALID_AMOUNT")
        return {
            "payment_id": payment_id,
            "refund_amount": amount,
            "reason": text(step, "reason", "requested_by_customer"),
        }


class ProcessRefundHandler(ExampleHandler):
    """Returns the money through the gateway."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Issue the refund validated by the parent step."""
        refund = parent(step, "validate_refund")
        payment_id = require_int(step, "payment_id")
        amount = refund.get("refund_amount", number(step, "refund_amount", 0.0))
        return {
            "refund_id": stable_id("re", payment_id, amount),
            "amount": amount,
            "status": "refunded",
        }


class CheckCardFormatHandler(ExampleHandler):
    """Checks the card number's length and Luhn checksum and finds its brand."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Validate `context.card_number`."""
        number_text = text(step, "card_number", "").replace(" ", "")
        if not (number_text.isdigit() and 12 <= len(number_text) <= 19 and _luhn(number_text)):
            raise PermanentError("card_number is not a valid card number", code="CARD_INVALID")
        brands = {"4": "visa", "5": "mastercard", "3": "amex", "6": "discover"}
        return {
            "brand": brands.get(number_text[0], "other"),
            "last4": number_text[-4:],
            "luhn_valid": True,
        }


class ScreenFraudHandler(ExampleHandler):
    """Scores the card and customer for fraud risk."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Compute a stable 0-99 risk score."""
        key = f"{text(step, 'card_number', '')}:{context_of(step).get('customer_id')}"
        score = int(hashlib.sha256(key.encode()).hexdigest(), 16) % 100
        return {"fraud_score": score, "risk": "high" if score >= 90 else "low"}


class AuthorizeCardCheckHandler(ExampleHandler):
    """Joins the format check and the fraud screen into one verdict."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Approve the card unless the fraud screen rated it high risk."""
        card, fraud = parent(step, "check_card_format"), parent(step, "screen_fraud")
        return {
            "verification_id": stable_id("ver", step.task_id, card.get("last4")),
            "approved": fraud.get("risk") != "high",
            "brand": card.get("brand"),
            "last4": card.get("last4"),
            "fraud_score": fraud.get("fraud_score"),
        }


class ValidatePlanHandler(ExampleHandler):
    """Checks the customer and that the plan exists, and prices it."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Look up the plan's monthly price."""
        customer_id = require_int(step, "customer_id")
        plan = text(step, "plan", "basic")
        if plan not in PLAN_PRICES:
            raise PermanentError(f"unknown plan '{plan}'", code="UNKNOWN_PLAN")
        return {"customer_id": customer_id, "plan": plan, "price": PLAN_PRICES[plan]}


class ChargeSubscriptionHandler(ExampleHandler):
    """Takes the first period's payment."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Charge the plan price."""
        plan = parent(step, "validate_plan")
        customer_id = require_int(step, "customer_id")
        return {
            "charge_id": stable_id("ch", step.task_id, customer_id, plan.get("plan")),
            "amount": plan.get("price"),
            "status": "captured",
        }


class ActivateSubscriptionHandler(ExampleHandler):
    """Creates the active subscription."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Activate the subscription paid for by the parent step."""
        customer_id = require_int(step, "customer_id")
        plan = text(step, "plan", "basic")
        return {
            "subscription_id": stable_id("sub", customer_id, plan),
            "status": "active",
            "charge_id": parent(step, "charge_subscription").get("charge_id"),
        }


class ScheduleRenewalHandler(ExampleHandler):
    """Schedules the next renewal (`handler_config.period_days`, default 30)."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Compute when the subscription renews."""
        subscription = parent(step, "activate_subscription").get("subscription_id")
        return {
            "subscription_id": subscription,
            "renews_in_days": int(step.config.get("period_days", 30)),
        }


class LookupSubscriptionHandler(ExampleHandler):
    """Finds the subscription, its plan and the days left in the paid period."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Derive a stable plan and remaining days from the subscription id."""
        subscription_id = require_int(step, "subscription_id")
        plan = sorted(PLAN_PRICES)[subscription_id % len(PLAN_PRICES)]
        return {
            "subscription_id": subscription_id,
            "plan": plan,
            "price": PLAN_PRICES[plan],
            "days_remaining": subscription_id % 30,
        }


class IssueProratedRefundHandler(ExampleHandler):
    """Refunds the unused part of the period (nothing when no days remain)."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Refund price * days_remaining / 30."""
        sub = parent(step, "lookup_subscription")
        amount = round(float(sub.get("price", 0.0)) * int(sub.get("days_remaining", 0)) / 30, 2)
        refund_id = stable_id("re", sub.get("subscription_id"), amount) if amount > 0 else None
        return {"refund_id": refund_id, "amount": amount}


class DeactivateSubscriptionHandler(ExampleHandler):
    """Stops the subscription."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Mark the subscription cancelled."""
        subscription_id = parent(step, "lookup_subscription").get("subscription_id")
        cancelled = "cancelled"  # not a status: the example's subscription's
        return {"subscription_id": subscription_id, "status": cancelled}


def _luhn(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0
