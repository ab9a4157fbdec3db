"""Deterministic identifiers: the same input always yields the same ids."""

from __future__ import annotations

from hashlib import blake2b

__all__ = ["stable_id"]


def stable_id(*parts: object) -> str:
    """A 32-hex-digit id derived from ``parts`` (order matters)."""
    digest = blake2b(digest_size=16)
    for part in parts:
        digest.update(str(part).encode("utf-8"))
        digest.update(b"\x1f")
    return digest.hexdigest()
