from __future__ import annotations

from django.urls import path

from jit.consumers import ApprovalsConsumer

websocket_urlpatterns = [path("ws/", ApprovalsConsumer.as_asgi())]
