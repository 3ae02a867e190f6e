"""Views: async ones run on the server's event loop, a sync one in Django's thread.

`events`/`ack` and `forever` are there for the framework matrix
(tests/integration/test_frameworks.py): server-sent events that wait for the
client's acknowledgement between two events, so a server that held the
stream back would hang the test, and a stream that runs until the client
leaves.
"""

import asyncio
import json
from collections.abc import AsyncIterator

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse


async def item(request: HttpRequest, item_id: int) -> JsonResponse:
    return JsonResponse({"item_id": item_id, "q": request.GET.get("q")})


async def echo(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"got": json.loads(request.body)})


async def count(request: HttpRequest) -> HttpResponse:
    # read(), not .body: .body refuses bodies past DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MiB)
    total = 0
    while chunk := request.read(65536):
        total += len(chunk)
    return HttpResponse(str(total), content_type="text/plain")


async def stream(request: HttpRequest) -> StreamingHttpResponse:
    async def lines() -> AsyncIterator[str]:
        for i in range(5):
            yield f"line {i}\n"

    return StreamingHttpResponse(lines(), content_type="text/plain")


def sync(request: HttpRequest) -> JsonResponse:
    """A plain (sync) view: Django runs it in a worker thread, off the event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return JsonResponse({"sync": True, "on_event_loop": False})
    return JsonResponse({"sync": True, "on_event_loop": True})


async def crash(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("unhandled in a view")


async def upload(request: HttpRequest) -> JsonResponse:
    file = request.FILES["file"]  # past 2.5 MiB Django spools it to a temporary file
    return JsonResponse({"name": file.name, "size": file.size})


ACKS: dict[str, asyncio.Event] = {}


async def events(request: HttpRequest) -> StreamingHttpResponse:
    acked = ACKS.setdefault(request.GET["key"], asyncio.Event())

    async def stream() -> AsyncIterator[str]:
        yield "data: 0\n\n"
        await acked.wait()
        yield "data: 1\n\n"

    return StreamingHttpResponse(stream(), content_type="text/event-stream")


async def ack(request: HttpRequest) -> HttpResponse:
    ACKS.setdefault(request.GET["key"], asyncio.Event()).set()
    return HttpResponse("ok", content_type="text/plain")


async def forever(request: HttpRequest) -> StreamingHttpResponse:
    async def ticks() -> AsyncIterator[bytes]:
        for _ in range(5000):  # at most about a minute
            yield b"tick\n" * 100
            await asyncio.sleep(0.01)

    return StreamingHttpResponse(ticks(), content_type="text/plain")
