"""Mirrors the loaded handler templates into the namespace/named-task/named-step tables.

Tasks reference their named task by id; ids are cached per process after the first lookup.
Several processes may sync at once: unique constraints decide, losers re-read.
"""

import asyncio
from dataclasses import asdict
from typing import Any, TypeVar

from tortoise.exceptions import IntegrityError
from tortoise.models import Model

from server.db.models import NamedStep, NamedTask, Namespace
from server.domain.templates import HandlerTemplate
from server.registry.handler_registry import HandlerRegistry

M = TypeVar("M", bound=Model)


class Catalogue:
    """Named-task ids for templates, created on first use."""

    def __init__(self, registry: HandlerRegistry) -> None:
        self.registry = registry
        self._ids: dict[tuple[str, str, str], int] = {}
        self._lock = asyncio.Lock()

    async def sync(self) -> None:
        """Make sure every loaded template has its rows (called at start-up)."""
        for template in self.registry.all():
            await self.named_task_id(template)

    async def named_task_id(self, template: HandlerTemplate) -> int:
        """The id of the template's named-task row, creating rows as needed."""
        key = (template.namespace, template.name, template.version)
        if key in self._ids:
            return self._ids[key]
        async with self._lock:
            if key not in self._ids:
                self._ids[key] = await self._ensure(template)
        return self._ids[key]

    async def _ensure(self, template: HandlerTemplate) -> int:
        info = self.registry.namespace(template.namespace)
        namespace = await _get_or_create(
            Namespace, {"name": template.namespace}, {"description": info.description}
        )
        named = await _get_or_create(
            NamedTask,
            {"namespace_id": namespace.id, "name": template.name, "version": template.version},
            {
                "description": template.description,
                "definition": {"steps": [_jsonable(asdict(s)) for s in template.steps]},
            },
        )
        for step in template.steps:
            await _get_or_create(
                NamedStep,
                {"named_task_id": named.id, "name": step.name},
                {"description": step.description, "handler_class": step.handler_class},
            )
        return int(named.id)


async def _get_or_create(model: type[M], keys: dict[str, Any], defaults: dict[str, Any]) -> M:
    row = await model.get_or_none(**keys)
    if row is not None:
        return row
    try:
        return await model.create(**keys, **defaults)
    except IntegrityError:
        return await model.get(**keys)


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
