"""HTTP routes (Django) and WebSocket routes (Channels)."""

from django.urls import path

from djangosite import consumers, views

urlpatterns = [
    path("items/<int:item_id>", views.item),
    path("echo", views.echo),
    path("count", views.count),
    path("stream", views.stream),
    path("sync", views.sync),
    path("crash", views.crash),
    path("upload", views.upload),
    path("events", views.events),
    path("ack", views.ack),
    path("forever", views.forever),
]

websocket_urlpatterns = [path("ws", consumers.Echo.as_asgi())]
