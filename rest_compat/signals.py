"""`POST /tasks/{id}/signals/{name}`: deliver a signal to a task's `wait_for` step."""

from starlette.requests import Request
from starlette.responses import Response

from rest_compat import serializers
from rest_compat.operations import render, services_of
from rest_compat.params import SignalBody


async def send_signal(request: Request, body: SignalBody) -> Response:
    sent = await services_of(request).signals.send(
        request.path_params["id"], request.path_params["name"], body.payload, body.signal_id
    )
    # A repeated signal_id answers with the first delivery, 200; a new delivery 201.
    return render(serializers.signal_out(sent), 201 if sent.created else 200)
