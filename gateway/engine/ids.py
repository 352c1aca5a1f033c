"""Visitor and session ids: unguessable in live use, reproducible in simulations.

An id is a prefix ("v_" visitor, "s_" session) and 128 random bits in URL-safe base64 (22
characters). Knowing a session id lets a client send activity for it, so live ids come from
`secrets`; `seeded_ids(seed)` gives the same sequence every run for simulations and tests.
"""

from __future__ import annotations

import base64
import random
import secrets
from collections.abc import Callable

ID_BYTES = 16  # 128 bits: far above the 64 bits of entropy OWASP asks of session ids

IdFactory = Callable[[str], str]  # prefix -> new id


def secure_ids() -> IdFactory:
    """Ids from the operating system's CSPRNG."""

    def new(prefix: str) -> str:
        return prefix + secrets.token_urlsafe(ID_BYTES)

    return new


def seeded_ids(seed: int) -> IdFactory:
    """A reproducible id sequence (never use in live traffic: the ids are predictable)."""
    rng = random.Random(seed)
    encode = base64.urlsafe_b64encode

    def new(prefix: str) -> str:
        raw = rng.getrandbits(ID_BYTES * 8).to_bytes(ID_BYTES, "big")
        return prefix + encode(raw).rstrip(b"=").decode("ascii")

    return new
