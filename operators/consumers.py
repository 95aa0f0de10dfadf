"""A run's live transcript: the run page listens on /ws/runs/<id>/ (group run.<id>)."""

from __future__ import annotations

from channels.generic.websocket import AsyncWebsocketConsumer

from operators.live import run_group
from vigilus.consumers import CLOSE_UNAUTHENTICATED


class RunConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.group = run_group(int(self.scope["url_route"]["kwargs"]["run_id"]))
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The page only listens."""

    async def live_html(self, event: dict) -> None:
        await self.send(text_data=event["html"])
