"""Step handlers for the people tests: a step that fails until the test opens a gate.

Lets a test make a task fail permanently, "fix the cause" (create the gate file), and then
retry it from the console or the CLI and watch it complete.
"""

from pathlib import Path
from typing import Any

from server.handlers import PermanentError, StepContext, StepHandler


class Prepare(StepHandler):
    def process(self, step: StepContext) -> Any:
        return {"step": step.name, "attempt": step.attempt}


class PassGate(StepHandler):
    def process(self, step: StepContext) -> Any:
        gate = Path(step.context["gate"])
        if not gate.exists():
            raise PermanentError(f"the gate {gate.name} is closed", code="GATE_CLOSED")
        return {"gate": "open", "attempt": step.attempt}
