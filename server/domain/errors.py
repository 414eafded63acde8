"""The domain error tree.

Services raise these; each adapter maps them in one table (REST: status + envelope, GraphQL:
a member of the mutation's result union). `type` and `code` are stable public identifiers.
"""

from typing import Any, ClassVar


class DomainError(Exception):
    """A failure the caller can understand and act on."""

    type: ClassVar[str] = "DomainError"
    code: ClassVar[str] = "DOMAIN_ERROR"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(DomainError):
    """The addressed object does not exist."""

    type = "NotFound"
    code = "NOT_FOUND"


class TaskNotFound(NotFound):
    """No task has this id."""

    type = "TaskNotFound"
    code = "TASK_NOT_FOUND"

    def __init__(self, task_id: object) -> None:
        super().__init__(f"Task '{task_id}' not found")


class StepNotFound(NotFound):
    """The task has no step with this name or id."""

    type = "StepNotFound"
    code = "STEP_NOT_FOUND"

    def __init__(self, task_id: object, step: object) -> None:
        super().__init__(f"Step '{step}' not found in task '{task_id}'")


class NamespaceNotFound(NotFound):
    """No handler is registered in this namespace."""

    type = "NamespaceNotFound"
    code = "NAMESPACE_NOT_FOUND"

    def __init__(self, namespace: str) -> None:
        super().__init__(f"Namespace '{namespace}' does not exist")


class HandlerNotFound(NotFound):
    """No handler matches this namespace, name and version."""

    type = "HandlerNotFound"
    code = "HANDLER_NOT_FOUND"

    def __init__(self, namespace: str, name: str, version: str | None) -> None:
        where = f" version '{version}'" if version else ""
        super().__init__(f"Handler '{name}' not found in namespace '{namespace}'{where}")


class ValidationFailed(DomainError):
    """The input breaks a rule; `details` maps each field to its messages."""

    type = "ValidationError"
    code = "VALIDATION_ERROR"

    def __init__(self, message: str, details: dict[str, list[str]]) -> None:
        super().__init__(message, dict(details))


class InvalidTaskConfig(ValidationFailed):
    """Input that cannot make a task: the seed's REST code, answered alike on every surface."""

    code = "INVALID_TASK_CONFIG"
    default_message: ClassVar[str] = "Invalid task configuration"

    @classmethod
    def of(cls, details: dict[str, list[str]]) -> "InvalidTaskConfig":
        return cls(cls.default_message, details)


class InvalidTransition(DomainError):
    """The requested state change is not allowed from the current state."""

    type = "InvalidTransition"
    code = "INVALID_TRANSITION"

    def __init__(self, entity: str, current: str, target: str) -> None:
        super().__init__(
            f"Cannot move {entity} from '{current}' to '{target}'",
            {"current_status": current, "requested_status": target},
        )
        self.entity, self.current, self.target = entity, current, target


class Conflict(DomainError):
    """The request conflicts with existing state (e.g. an idempotency key reused)."""

    type = "Conflict"
    code = "CONFLICT"


class TemplateInvalid(DomainError):
    """A handler definition cannot be loaded; the message names the file and step."""

    type = "TemplateInvalid"
    code = "TEMPLATE_INVALID"


class StepFailure(Exception):
    """Base of the errors a step handler raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RetryableError(StepFailure):
    """The step failed but may succeed later; `retry_after` (seconds) is honoured."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(StepFailure):
    """The step failed and retrying cannot help."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class AuthenticationFailed(DomainError):
    """No token, or one that does not verify (expired, wrong key, wrong audience, ...).

    The message is the same whatever went wrong, so a caller learns nothing about the keys
    or claims; `reason` (an exception class name, never token text) is for the server log.
    """

    type = "AuthenticationError"
    code = "AUTHENTICATION_FAILED"

    def __init__(self, reason: str = "missing token") -> None:
        super().__init__("Invalid or expired authentication token")
        self.reason = reason


class AuthorizationFailed(DomainError):
    """A valid token that lacks a permission the request needs; the message names them."""

    type = "AuthorizationError"
    code = "AUTHORIZATION_FAILED"

    def __init__(self, missing: list[str]) -> None:
        super().__init__(f"Insufficient permissions for {', '.join(missing)}")
        self.missing = list(missing)


class RateLimited(DomainError):
    """Too many requests from one caller; `retry_after` is in whole seconds."""

    type = "RateLimitExceeded"
    code = "RATE_LIMITED"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Rate limit exceeded; retry in {retry_after} seconds")
        self.retry_after = retry_after
