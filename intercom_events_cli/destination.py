"""Where an event is to be delivered, fixed when it is captured (pure; no I/O).

A destination is the API base URL (so the region), the Intercom-Version header and a
fingerprint of the token: the first 32 hex digits of HMAC-SHA256(token), keyed with a
random secret kept in the outbox itself, so that the fingerprint cannot be checked against
guessed tokens anywhere else. Messages name a destination by its URL and the last four
characters of the token ("token ending ...f3a2"), never by the token.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from .config import Settings

FINGERPRINT_KEY_BYTES = 32
FINGERPRINT_HEX_CHARS = 32
HINT_CHARS = 4


@dataclass(frozen=True)
class Destination:
    """One workspace configuration events are delivered to."""

    base_url: str
    api_version: str
    token_fingerprint: str
    token_hint: str

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

    def describe(self) -> str:
        """``https://api.eu.intercom.io, token ending ...f3a2`` (no secret)."""
        return f"{self.base_url}, token ending ...{self.token_hint}"


def fingerprint(token: str, key: bytes) -> str:
    """The token's keyed fingerprint (hex)."""
    digest = hmac.new(key, token.encode("utf-8"), hashlib.sha256).hexdigest()
    return digest[:FINGERPRINT_HEX_CHARS]
