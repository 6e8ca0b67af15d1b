"""The secrets ievents holds, and their removal from any text it writes.

Every token loaded is registered with :func:`register_secret` (by :class:`.settings.Settings`
itself), in every form it can come back in, so that the CLI's output and every message
can pass through :func:`redact`.
"""

from __future__ import annotations

_secrets: set[str] = set()


# Shorter "tokens" are not real Intercom tokens (those are ~60 characters); redacting a
# one-letter test token would garble every message instead of protecting anything.
MIN_SECRET_LENGTH = 8


def register_secret(value: str) -> None:
    """Remember a secret so that :func:`redact` removes it from any text."""
    if len(value) >= MIN_SECRET_LENGTH:
        # Also as it comes back encoded: JSON and repr() escapes, percent-encoded in a
        # server's next-page link, HTML-escaped in an error page, base64 in an echo.
        from ..textsafe import token_forms

        _secrets.update(token_forms(value))


def redact(text: str) -> str:
    """Replace every registered secret in ``text`` with ``***``."""
    # Longest first: an escaped form may contain a shorter one.
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    return text


def forget_secrets() -> None:
    """Forget every registered secret, as a new process would (see ``reset_process_state``)."""
    _secrets.clear()


def token_tail(token: str) -> str:
    """The token's last four characters, enough to tell two tokens apart and no more."""
    return f"...{token[-4:]}" if len(token) >= 8 else "(set; too short to show any of it)"
