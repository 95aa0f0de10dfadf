"""The dashboard's socket (/ws/, on every page): approvers receive the pending access requests and plans (group
approvals), and each person the notices meant for them alone (group user.<id>: their run finished, or waits for a
decision)."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from jit.live import APPROVALS_GROUP, PendingRequests, render_pending
from jit.services import can_approve
from vigilus.live import LiveHtml, user_group
from vigilus.redaction import redact
from vigilus.websocket_security import CLOSE_UNAUTHENTICATED


class ApprovalsConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.groups_joined = [user_group(user.pk)]
        if await database_sync_to_async(can_approve)(user):
            self.groups_joined.append(APPROVALS_GROUP)
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: dict, **kwargs: object) -> None:
        """The dashboard only listens; anything sent is ignored."""

    async def live_html(self, event: LiveHtml) -> None:
        """An htmx out-of-band swap: the html is sent as it is (the sender redacted it)."""
        await self.send(text_data=event["html"])

    async def approvals_pending(self, event: PendingRequests) -> None:
        """The pending requests and plans; a person the four-eyes rule bars from approving one of them gets their
        own render (that Approve button disabled, saying why)."""
        if self.scope["user"].pk not in event["starters"]:
            await self.send(text_data=event["html"])
            return
        html, _starters = await database_sync_to_async(render_pending)(user=self.scope["user"])
        await self.send(text_data=redact(html))
