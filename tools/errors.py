"""Errors of the infrastructure inventory, importable without loading paramiko (the gateway catches them)."""

from __future__ import annotations


class InventoryError(Exception):
    """A problem a person can act on (unknown server, no host matched, a key that does not load)."""


class HostKeyChanged(InventoryError):
    """The host offered a different key from the pinned one: possibly a machine in the middle."""

    def __init__(self, message: str, *, fingerprint: str) -> None:
        super().__init__(message)
        self.fingerprint = fingerprint  # the key the host offers now


class HostKeyNotTrusted(InventoryError):
    """No key is pinned yet: a person must confirm the fingerprint first."""

    def __init__(self, message: str, *, key_type: str, key_base64: str, fingerprint: str) -> None:
        super().__init__(message)
        self.key_type = key_type
        self.key_base64 = key_base64
        self.fingerprint = fingerprint
