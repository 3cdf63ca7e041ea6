"""The banner that shows the answer of the web UI's last action, carried in a signed redirect.

An action (a verb, a registration) answers with a redirect (POST/redirect/GET) whose query holds
the answer: verb, code and message. Anyone can write such a query into a link, so the query also
carries an HMAC of the answer under a key this process chose at random: a banner shows only for
answers this server itself gave. A link crafted elsewhere ("Purge succeeded (200)") shows the page
without a banner, and a restart forgets the key, so old links just lose their banner.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

FLASH_KEYS = ("verb", "code", "message", "sig")


class FlashSigner:
    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)

    def _sign(self, verb: str, code: str, message: str) -> str:
        text = "\0".join((verb, code, message)).encode("utf-8", "surrogatepass")
        return hmac.new(self._key, text, hashlib.sha256).hexdigest()[:32]

    def query(self, verb: str, code: int, message: str) -> str:
        """The query string (without `?`) that makes the next page show this answer."""
        answer = {"verb": verb, "code": str(code), "message": message}
        return urlencode({**answer, "sig": self._sign(verb, str(code), message)})

    def read(self, query: Mapping[str, str]) -> dict[str, Any] | None:
        """The answer to show as a banner, or None (no answer, or not signed by this server)."""
        verb, code, message = query.get("verb"), query.get("code"), query.get("message", "")
        sig = query.get("sig", "")
        if verb is None or code is None:
            return None
        if not hmac.compare_digest(sig.encode(), self._sign(verb, code, message).encode()):
            return None
        try:
            status = int(code)
        except ValueError:
            return None
        return {"verb": verb, "code": status, "ok": 200 <= status < 300, "message": message}


def without_flash(query: Mapping[str, str]) -> list[tuple[str, str]]:
    """The query's other parameters: what links built from this page carry on (not the banner)."""
    return [(k, v) for k, v in query.items() if k not in FLASH_KEYS]
