"""Typed errors of model calls and model listing. Each message is meant for a person and is redacted."""

from __future__ import annotations

from vigilus.redaction import redact


class ProviderError(Exception):
    """A model endpoint did not give a usable answer. `transient` errors are worth retrying."""

    transient = False
    label = "error"

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))

    @property
    def message(self) -> str:
        return str(self)


class AuthenticationFailed(ProviderError):
    label = "authentication failed"


class RateLimited(ProviderError):
    transient = True
    label = "rate limited"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RequestTimedOut(ProviderError):
    transient = True
    label = "timed out"


class Unreachable(ProviderError):
    transient = True
    label = "unreachable"


class ServerError(ProviderError):
    transient = True
    label = "server error"

    def __init__(self, message: str, status: int | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.detail = redact(detail)  # the server's own words, for a message that quotes them


class ConversationRefused(ServerError):
    """The server failed the same way twice on the same request: a fault of this conversation (a chat template
    that cannot render it, say), not a passing one, so asking again would only fail again."""

    transient = False
    label = "conversation refused"


class ModelNotFound(ProviderError):
    label = "model not found"


class BadRequest(ProviderError):
    label = "request refused"


class ContextExceeded(BadRequest):
    """The conversation cannot be made to fit the model's context window; the message says which model and
    window, as a plain sentence."""

    label = "context exceeded"

    def __init__(self, message: str, limit: int | None = None) -> None:
        super().__init__(message)
        self.limit = limit  # the window the server said it has, when it said


class MalformedResponse(ProviderError):
    label = "malformed response"


class NotConfigured(ProviderError):
    label = "not configured"
