"""A run's live transcript: the run page listens on /ws/runs/<id>/ (group run.<id>)."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from jit.services import can_approve
from operators.live import RunTranscript, add_watcher, remove_watcher, render_transcript, run_group
from vigilus.redaction import redact
from vigilus.websocket_security import CLOSE_UNAUTHENTICATED


class RunConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        # Whether this person sees Approve/Deny forms, decided once: a role changed meanwhile shows on reconnect,
        # and the approve and deny views check again anyway.
        self.approver = await database_sync_to_async(can_approve)(user)
        self.group = run_group(self.run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await database_sync_to_async(add_watcher)(self.run_id)
        await self.accept()
        # Steps taken while nobody watched were not pushed: start from the transcript as it stands.
        await self.send_own_render()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)
            await database_sync_to_async(remove_watcher)(self.run_id)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The page only listens."""

    async def send_own_render(self) -> None:
        """The transcript rendered for this socket's person (approval forms only when they may use them)."""
        html = await database_sync_to_async(render_transcript)(
            self.run_id, approver=self.approver, user=self.scope["user"]
        )
        if html is not None:
            await self.send(text_data=redact(html))

    async def run_transcript(self, event: RunTranscript) -> None:
        """A step: the render fitting this person; one of their own when the four-eyes rule bars them from
        approving the run's requests (they started it)."""
        if not self.approver or not event["approver_html"]:
            await self.send(text_data=event["html"])
        elif self.scope["user"].pk in event["starters"]:
            await self.send_own_render()
        else:
            await self.send(text_data=event["approver_html"])
