"""Example step handlers of the `notifications` namespace: email, SMS, push and admin alerts.

Nothing is really sent; each handler returns the message id a provider would have returned.
`NotifyCustomerHandler` is shared by other namespaces' workflows (refund and cancellation
notices), configured through `handler_config`.
"""

import re
from typing import Any

from server.domain.errors import PermanentError
from server.examples.handlers.common import (
    ExampleHandler,
    context_of,
    parent,
    require_int,
    stable_id,
    text,
)
from server.handlers.base import StepContext

_PHONE = re.compile(r"\+[1-9][0-9]{6,14}")
SEVERITIES = ("info", "warning", "critical")


class RenderTemplateHandler(ExampleHandler):
    """Renders the email's subject and body from the template name and context."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Render `context.template` (default `generic`) for `context.recipient`."""
        recipient = text(step, "recipient", "")
        if "@" not in recipient:
            raise PermanentError("context.recipient must be an email address", "INVALID_CONTEXT")
        template = text(step, "template", "generic")
        subject = text(step, "subject", template.replace("_", " ").capitalize())
        return {
            "recipient": recipient,
            "template": template,
            "subject": subject,
            "body_length": len(subject) + len(str(context_of(step).get("variables", {}))),
        }


class DeliverEmailHandler(ExampleHandler):
    """Hands the rendered email to the mail provider."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Send the email rendered by the parent step."""
        rendered = parent(step, "render_template")
        return {
            "message_id": stable_id("eml", step.task_id, rendered.get("recipient")),
            "recipient": rendered.get("recipient"),
            "status": "sent",
        }


class RecordDeliveryHandler(ExampleHandler):
    """Writes a delivery record covering every parent step's results."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Record which steps delivered what."""
        return {
            "record_id": stable_id("rec", step.task_id, step.name),
            "recorded_steps": sorted(step.parent_results),
        }


class ValidatePhoneNumberHandler(ExampleHandler):
    """Checks the number is in E.164 form and the message fits."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Validate phone_number and message."""
        phone = text(step, "phone_number", "")
        if not _PHONE.fullmatch(phone):
            raise PermanentError("context.phone_number must be E.164", code="INVALID_CONTEXT")
        message = text(step, "message", "")
        segments = max(1, -(-len(message) // 160))
        return {"phone_number": phone, "segments": segments}


class SendSmsHandler(ExampleHandler):
    """Sends the SMS through the messaging provider."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Send the validated message."""
        checked = parent(step, "validate_phone_number")
        return {
            "message_id": stable_id("sms", step.task_id, checked.get("phone_number")),
            "segments": checked.get("segments", 1),
            "status": "queued",
        }


class LookupDevicesHandler(ExampleHandler):
    """Finds the customer's registered devices."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Derive one to three stable device tokens for the customer."""
        customer_id = require_int(step, "customer_id")
        count = customer_id % 3 + 1
        return {"devices": [stable_id("dev", customer_id, n) for n in range(count)]}


class DeliverPushHandler(ExampleHandler):
    """Pushes the notification to every device."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Send one push per device found by the parent step."""
        devices = parent(step, "lookup_devices").get("devices", [])
        title = text(step, "title", "Notification")
        return {"title": title, "receipts": [stable_id("psh", step.task_id, d) for d in devices]}


class ClassifyAlertHandler(ExampleHandler):
    """Decides who hears about the alert."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Page on-call only for critical alerts; always post to the channel."""
        severity = text(step, "severity", "warning")
        if severity not in SEVERITIES:
            raise PermanentError(f"unknown severity '{severity}'", code="INVALID_CONTEXT")
        return {
            "severity": severity,
            "page_on_call": severity == "critical",
            "alert_id": stable_id("alr", step.task_id, text(step, "message", "")),
        }


class NotifyOnCallHandler(ExampleHandler):
    """Pages the on-call administrator when the classification asks for it."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Page (or not) the rotation named by `handler_config.rotation`."""
        alert = parent(step, "classify_alert")
        paged = bool(alert.get("page_on_call"))
        return {
            "paged": paged,
            "rotation": step.config.get("rotation", "platform"),
            "page_id": stable_id("pg", alert.get("alert_id")) if paged else None,
        }


class PostToChannelHandler(ExampleHandler):
    """Posts the alert to the team channel (`handler_config.channel`)."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Post the alert message."""
        alert = parent(step, "classify_alert")
        return {
            "channel": step.config.get("channel", "#ops-alerts"),
            "posted": True,
            "message": f"[{alert.get('severity', 'warning')}] {text(step, 'message', '')}",
        }


class NotifyCustomerHandler(ExampleHandler):
    """Sends a customer notice; `handler_config` gives its `template` and `channel`."""

    def work(self, step: StepContext) -> dict[str, Any]:
        """Queue the notice for the context's customer."""
        template = str(step.config.get("template", "generic"))
        customer = context_of(step).get("customer_id", "unknown")
        return {
            "notification_id": stable_id("ntf", step.task_id, template, customer),
            "channel": step.config.get("channel", "email"),
            "template": template,
        }
