"""Make text from elsewhere (a server, an input file) safe for a terminal or a log line.

A server's answer may carry ANSI escapes (recolour or rewrite the screen), a carriage
return (overwrite what was printed), NUL or bell characters, or bidirectional overrides
(show text in another order than it is). They are shown escaped, visibly, instead.
"""

from __future__ import annotations

import re

__all__ = ["sanitize", "token_forms"]

# C0 controls but newline and tab, DEL, C1 controls, and the bidi embedding/override/isolate
# characters.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def sanitize(text: str) -> str:
    """``text`` with control characters shown as ``\\xNN`` escapes (newline and tab kept)."""
    return _UNSAFE.sub(_escape, text)


def token_forms(secret: str) -> set[str]:
    """The forms a secret takes when echoed back: escaped, percent-encoded, base64.

    JSON and Python string escapes, percent-encoding (``quote`` and ``quote_plus``), HTML
    escaping, and base64 (standard and URL-safe, padded or not). A secret inside a longer
    base64 text is encoded differently by its offset modulo 3: for each offset the part
    of the encoding that only the secret's bytes determine is included.
    """
    import base64
    import html
    import json
    from urllib.parse import quote, quote_plus

    forms = {
        secret,
        json.dumps(secret)[1:-1],
        repr(secret)[1:-1],
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        html.escape(secret),
        html.escape(secret, quote=False),
    }
    raw = secret.encode("utf-8")
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        forms.add(encode(raw).decode())
        forms.add(encode(raw).decode().rstrip("="))
        for offset in (1, 2):
            encoded = encode(b"\0" * offset + raw).decode()
            first = 1  # the first group mixes the padding bytes with the secret's
            last = (offset + len(raw)) // 3  # groups wholly made of the secret's bytes
            if last > first + 1:
                forms.add(encoded[4 * first : 4 * last])
    # Short forms would redact innocent text.
    return {form for form in forms if len(form) >= 8}
