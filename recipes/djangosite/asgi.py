"""The ASGI application: Django for HTTP, Channels for WebSocket.

Django has no lifespan protocol: it raises on the ``lifespan`` scope, and
Pounce's default ``--lifespan auto`` then serves without one (one INFO line).
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djangosite.settings")

from django.core.asgi import get_asgi_application

django_app = get_asgi_application()  # first: it sets Django up before Channels loads

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from djangosite.urls import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {"http": django_app, "websocket": URLRouter(websocket_urlpatterns)}
)
