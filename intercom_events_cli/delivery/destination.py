"""Where an event is to be delivered, fixed when it is captured (pure; no I/O).

A destination is a workspace: the API base URL (so the region) and the workspace id
(``app.id_code`` from ``GET /me``). The outbox keeps one row per token it has seen, keyed
by a fingerprint of the token: the first 32 hex digits of HMAC-SHA256(token), keyed with
a random secret kept in the outbox itself, so that the fingerprint cannot be checked
against guessed tokens anywhere else. The first flush, relay or ``check`` that uses a
token learns its workspace; from then on every token of that workspace delivers the
events captured under any of them (a rotated token strands nothing).

Messages name a destination by its workspace id and region, never by its token.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from ..config.settings import Settings
from ..frozen import frozen

FINGERPRINT_KEY_BYTES = 32
FINGERPRINT_HEX_CHARS = 32
HINT_CHARS = 4
# Intercom's API hosts and the region each serves (messages name the region).
_REGIONS = {
    "api.intercom.io": "US",
    "api.eu.intercom.io": "Europe",
    "api.au.intercom.io": "Australia",
}


@frozen
class Destination:
    """One token's destination; ``workspace_id`` None until a flush or check learns it."""

    base_url: str
    api_version: str
    token_fingerprint: str
    token_hint: str
    workspace_id: str | None = None

    @classmethod
    def of(cls, settings: Settings, key: bytes) -> Destination:
        """The destination ``settings`` deliver to, fingerprinted with the outbox's ``key``."""
        if not settings.token:
            raise ValueError("a destination needs a token")
        return cls(
            base_url=settings.base_url.rstrip("/"),
            api_version=settings.api_version,
            token_fingerprint=fingerprint(settings.token, key),
            token_hint=settings.token[-HINT_CHARS:],
        )

    @property
    def region(self) -> str:
        """``US``, ``Europe`` or ``Australia`` for Intercom's hosts, else the base URL (a
        proxy, a test server)."""
        return _REGIONS.get(urlsplit(self.base_url).netloc.lower(), self.base_url)

    def describe(self) -> str:
        """``workspace abc123xy (Europe)``; a workspace not yet learned names its host."""
        if self.workspace_id:
            return f"workspace {self.workspace_id} ({self.region})"
        return f"a workspace not yet known ({self.region}: no flush or check used its token)"


def fingerprint(token: str, key: bytes) -> str:
    """The token's keyed fingerprint (hex)."""
    digest = hmac.new(key, token.encode("utf-8"), hashlib.sha256).hexdigest()
    return digest[:FINGERPRINT_HEX_CHARS]
