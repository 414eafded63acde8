"""Task endpoints: create, list, show (optionally with dependencies), update, cancel, retry."""

from starlette.requests import Request
from starlette.responses import Response

from rest_compat import serializers
from rest_compat.operations import render_json, services_of
from rest_compat.params import (
    BulkBody,
    BulkRerunBody,
    CreateTaskBody,
    CreateTaskHeaders,
    RerunBody,
    TaskListQuery,
    TaskShowQuery,
    UpdateTaskBody,
)
from rest_compat.shapes import BulkOut, TaskList, TaskOut, TaskRecordOut, TaskWithDependencies
from server.domain import permissions as need
from server.domain.views import CreateTask, Rerun, TaskFilter
from server.services.bulk import BulkFilter, BulkResult
from server.services.tasks import MAX_PER_PAGE


async def create_task(
    request: Request, body: CreateTaskBody, headers: CreateTaskHeaders
) -> Response:
    task, created = await services_of(request).tasks.create_task(
        CreateTask(
            namespace=body.namespace,
            name=body.name,
            version=body.version,
            context=body.context,
            initiator=body.initiator,
            source_system=body.source_system,
            reason=body.reason,
            tags=tuple(body.tags),
            bypass_steps=tuple(body.bypass_steps),
            idempotency_key=headers.idempotency_key,
            run_at=body.run_at,
            delay_seconds=body.delay_seconds,
            debounce_key=body.debounce_key,
            debounce_seconds=body.debounce_seconds,
            priority=body.priority,
            subject=services_of(request).auth.subject(request.scope),
        )
    )
    # A repeated Idempotency-Key answers with the task it created the first time, a debounced
    # creation that joined an open window with the task it joined.
    return render_json(serializers.task_json(task), TaskOut, 201 if created else 200)


async def list_tasks(request: Request, query: TaskListQuery) -> Response:
    per_page = min(query.per_page, MAX_PER_PAGE)
    flt = TaskFilter(
        namespace=query.namespace, name=query.name, version=query.version, status=query.status
    )
    page = await services_of(request).tasks.list_tasks(flt, page=query.page, per_page=per_page)
    return render_json(
        serializers.task_list(page, current_page=query.page, per_page=per_page), TaskList
    )


async def show_task(request: Request, query: TaskShowQuery) -> Response | TaskWithDependencies:
    services = services_of(request)
    if query.include_dependencies:
        # The steps are step data: the same grant as /workflow_steps and GraphQL's Task.steps.
        services.auth.require(request.scope, [need.READ_STEPS])
    if not query.include_dependencies:
        task = await services.tasks.get_task(request.path_params["id"])
        return render_json(serializers.task_json(task), TaskOut)
    return serializers.task_with_dependencies(
        await services.tasks.dependencies(request.path_params["id"])
    )


async def update_task(request: Request, body: UpdateTaskBody) -> TaskRecordOut:
    task = await services_of(request).tasks.update_task(
        request.path_params["id"], reason=body.reason, tags=body.tags
    )
    return serializers.task_record(task)


async def cancel_task(request: Request) -> TaskRecordOut:
    task = await services_of(request).tasks.cancel_task(request.path_params["id"])
    return serializers.task_record(task)


async def retry_task(request: Request) -> TaskRecordOut:
    task = await services_of(request).tasks.retry_task(request.path_params["id"])
    return serializers.task_record(task)


async def rerun_task(request: Request, body: RerunBody) -> Response:
    services = services_of(request)
    task = await services.tasks.rerun_task(
        request.path_params["id"],
        Rerun(
            from_step=body.from_step,
            context=body.context,
            inputs=body.inputs,
            subject=services.auth.subject(request.scope),
        ),
    )
    return render_json(serializers.task_json(task), TaskOut, 201)


def _bulk_filter(body: BulkBody) -> BulkFilter:
    f = body.filter
    return BulkFilter(
        namespace=f.namespace,
        name=f.name,
        version=f.version,
        status=f.status.value if f.status else None,
        created_after=f.created_after,
        created_before=f.created_before,
        ids=f.ids,
    )


def _bulk_out(result: BulkResult) -> BulkOut:
    return BulkOut(count=result.count, ids=result.ids, next_cursor=result.next_cursor)


async def bulk_cancel(request: Request, body: BulkBody) -> BulkOut:
    services = services_of(request)
    services.auth.require(request.scope, [need.CANCEL_TASK])  # besides tasker.task:bulk
    bulk = services.tasks.bulk
    return _bulk_out(await bulk.cancel(_bulk_filter(body), body.limit, body.cursor))


async def bulk_retry(request: Request, body: BulkBody) -> BulkOut:
    services = services_of(request)
    services.auth.require(request.scope, [need.RETRY_TASK])  # besides tasker.task:bulk
    bulk = services.tasks.bulk
    return _bulk_out(await bulk.retry(_bulk_filter(body), body.limit, body.cursor))


async def bulk_rerun(request: Request, body: BulkRerunBody) -> BulkOut:
    services = services_of(request)
    services.auth.require(request.scope, [need.CREATE_TASK])  # besides tasker.task:bulk
    req = Rerun(body.from_step, body.context, None, services.auth.subject(request.scope))
    bulk = services.tasks.bulk
    return _bulk_out(await bulk.rerun(_bulk_filter(body), req, body.limit, body.cursor))
