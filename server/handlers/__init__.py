"""Public API for step-handler authors."""

from server.domain.errors import PermanentError, RetryableError
from server.handlers.base import StepContext, StepHandler

__all__ = ["PermanentError", "RetryableError", "StepContext", "StepHandler"]
