"""Invocation and deployment ids (SPEC §7) and the key-range → partition mapping.

`inv_` + 33 base62 characters encoding 192 bits: the partition key (u64) followed by 128 bits that
are random, or derived from (service, handler, idempotency key) so that a repeated request maps to
the same invocation. The partition of an id is derived from its partition key alone, so any
component can route by id. Deployment ids are `dp_` + 22 base62 characters (128 random bits).
"""

from __future__ import annotations

import hashlib
import os
import secrets

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
INVOCATION_PREFIX = "inv_"
DEPLOYMENT_PREFIX = "dp_"
INVOCATION_BODY_LEN = 33  # ceil(192 / log2(62))
DEPLOYMENT_BODY_LEN = 22  # ceil(128 / log2(62))
KEY_SPACE = 1 << 64
_SUFFIX_MASK = (1 << 128) - 1


class InvalidId(ValueError):
    """A string that is not a well-formed id; the message says what the form is."""


# Two base62 digits per step: an id is encoded on every ingress request, and a 192-bit divmod by
# 62² costs the same as one by 62.
_PAIRS = [a + b for a in ALPHABET for b in ALPHABET]


def _encode(number: int, width: int) -> str:
    pairs = []
    for _ in range((width + 1) // 2):
        number, rem = divmod(number, 3844)
        pairs.append(_PAIRS[rem])
    text = "".join(reversed(pairs))
    return text[len(text) - width :]


def _decode(body: str) -> int:
    number = 0
    for c in body:
        number = number * 62 + _INDEX[c]
    return number


def make_invocation_id(partition_key: int, suffix: int) -> str:
    return INVOCATION_PREFIX + _encode((partition_key << 128) | suffix, INVOCATION_BODY_LEN)


def new_invocation_id() -> str:
    return make_invocation_id(secrets.randbits(64), secrets.randbits(128))


class RandomIds:
    """Fresh random invocation ids, drawing the OS's randomness 256 ids at a time (one
    `getrandom` call per id was a measurable share of an ingress request)."""

    def __init__(self, batch: int = 256) -> None:
        self._batch = batch
        self._pool = b""
        self._at = 0

    def next(self) -> tuple[str, int]:
        """A new id and its partition key."""
        if self._at >= len(self._pool):
            self._pool = os.urandom(24 * self._batch)
            self._at = 0
        bits = int.from_bytes(self._pool[self._at : self._at + 24], "big")
        self._at += 24
        key = bits >> 128
        return make_invocation_id(key, bits & _SUFFIX_MASK), key


def idempotent_invocation_id(service: str, handler: str, idempotency_key: str) -> str:
    """The same (service, handler, key) always yields the same id, hence the same partition."""
    digest = hashlib.blake2b(
        f"{service}\x00{handler}\x00{idempotency_key}".encode(), digest_size=24
    ).digest()
    number = int.from_bytes(digest, "big")
    return make_invocation_id(number >> 128, number & ((1 << 128) - 1))


def _expected_invocation_form() -> str:
    return f"'{INVOCATION_PREFIX}' followed by {INVOCATION_BODY_LEN} characters of [0-9A-Za-z]"


def parse_invocation_id(text: str) -> int:
    """Validate an invocation id and return its partition key. Raises InvalidId with the form."""
    if not isinstance(text, str) or not text.startswith(INVOCATION_PREFIX):
        raise InvalidId(f"malformed invocation id {text!r}: expected {_expected_invocation_form()}")
    body = text[len(INVOCATION_PREFIX) :]
    if len(body) != INVOCATION_BODY_LEN or any(c not in _INDEX for c in body):
        raise InvalidId(f"malformed invocation id {text!r}: expected {_expected_invocation_form()}")
    number = _decode(body)
    if number >> 192:
        raise InvalidId(f"malformed invocation id {text!r}: value out of range")
    return number >> 128


def partition_of_key(partition_key: int, partitions: int) -> int:
    """Key ranges split evenly: partition p owns keys [p·2⁶⁴/n, (p+1)·2⁶⁴/n)."""
    return (partition_key * partitions) >> 64


def partition_of(invocation_id: str, partitions: int) -> int:
    return partition_of_key(parse_invocation_id(invocation_id), partitions)


def new_deployment_id() -> str:
    return DEPLOYMENT_PREFIX + _encode(secrets.randbits(128), DEPLOYMENT_BODY_LEN)


def validate_deployment_id(text: str) -> str:
    body = text[len(DEPLOYMENT_PREFIX) :] if text.startswith(DEPLOYMENT_PREFIX) else None
    if body is None or len(body) != DEPLOYMENT_BODY_LEN or any(c not in _INDEX for c in body):
        raise InvalidId(
            f"malformed deployment id {text!r}: expected '{DEPLOYMENT_PREFIX}' followed by "
            f"{DEPLOYMENT_BODY_LEN} characters of [0-9A-Za-z]"
        )
    return text
