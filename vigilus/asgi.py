"""ASGI entry point (daphne): HTTP through Django, websockets through Channels.

Websockets must come from a page of this site (SameOriginValidator) and carry a logged-in
session (each consumer closes anonymous sockets).
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vigilus.settings")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from vigilus.routing import websocket_urlpatterns  # noqa: E402
from vigilus.services import prepare_process  # noqa: E402
from vigilus.websocket_security import SameOriginValidator  # noqa: E402

prepare_process()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
