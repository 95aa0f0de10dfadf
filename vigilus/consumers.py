"""The dashboard's websocket: each logged-in person receives their own live events (group user.<id>)."""

from __future__ import annotations

from channels.generic.websocket import AsyncJsonWebsocketConsumer

# Close codes in the 4000 range are the application's own.
CLOSE_UNAUTHENTICATED = 4401


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


class DashboardConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.group = user_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: dict, **kwargs: object) -> None:
        """The dashboard only listens; anything sent is ignored."""

    async def live_html(self, event: dict) -> None:
        """An htmx out-of-band swap: the html is sent as it is (the sender redacted it)."""
        await self.send(text_data=event["html"])
