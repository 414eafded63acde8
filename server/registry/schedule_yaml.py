"""The `schedules:` block of a handler YAML file, checked at load time.

```yaml
schedules:
  - name: nightly
    cron: "0 2 * * *"          # croniter syntax; a sixth field is seconds
    timezone: Europe/Paris     # IANA name, default UTC
    context: {region: eu}      # the fired tasks' context, checked against the handler schema
    catch_up: latest           # latest (default) | all
```
A bad entry is a TemplateInvalid naming the file and the schedule
(`jobs.yaml: schedule 'nightly': cron: ...`), so nothing of the file is loaded.
"""

from typing import Any

from jsonschema.validators import Draft202012Validator, validator_for

from server.domain.errors import TemplateInvalid
from server.domain.schedules import CatchUp, ScheduleSpec, schedule_problems

FIELDS = frozenset({"name", "cron", "timezone", "context", "catch_up"})


def parse_schedules(
    raw: object, *, source: str, context_schema: dict[str, Any] | None
) -> tuple[ScheduleSpec, ...]:
    """The file's schedules (an empty tuple when it declares none)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise TemplateInvalid(f"{source}: 'schedules' must be a list", {"file": source})
    specs: dict[str, ScheduleSpec] = {}
    for index, entry in enumerate(raw, start=1):
        label = entry.get("name") if isinstance(entry, dict) else None
        label = label if isinstance(label, str) and label else f"#{index}"

        def error(problem: str, label: str = label) -> TemplateInvalid:
            details = {"file": source, "schedule": label}
            return TemplateInvalid(f"{source}: schedule '{label}': {problem}", details)

        if not isinstance(entry, dict):
            raise error("expected a mapping")
        unknown = sorted(str(k) for k in entry if k not in FIELDS)
        if unknown:
            raise error(f"unknown field '{unknown[0]}' (known: {', '.join(sorted(FIELDS))})")
        values = {"namespace": "-", "handler": "-", "timezone": "UTC", **entry}
        problems = schedule_problems(values, creating=True)
        if problems:
            field, messages = next(iter(problems.items()))
            raise error(f"{field}: {messages[0]}")
        if label in specs:
            raise error("duplicate schedule name")
        context = entry.get("context") or {}
        if context_schema is not None:
            validator = validator_for(context_schema, default=Draft202012Validator)
            for problem in validator(context_schema).iter_errors(context):
                raise error(f"context does not match the handler's schema: {problem.message}")
        specs[label] = ScheduleSpec(
            name=label,
            cron=entry["cron"],
            timezone=entry.get("timezone") or "UTC",
            context=context,
            catch_up=CatchUp(entry.get("catch_up") or CatchUp.LATEST.value),
        )
    return tuple(specs.values())
