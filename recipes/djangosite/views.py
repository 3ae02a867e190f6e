"""Views: async ones run on the server's event loop, a sync one in Django's thread."""

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
