"""Every app's websocket routes, gathered for asgi.py."""

from __future__ import annotations

from jit.routing import websocket_urlpatterns as jit_routes
from operators.routing import websocket_urlpatterns as operators_routes

websocket_urlpatterns = [*jit_routes, *operators_routes]
