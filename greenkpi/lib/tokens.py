"""Token format: ``<marker><prefix>_<secret><checksum>`` (collector tokens ``gkc_``, personal
access tokens ``gkp_``).

The prefix (8 chars) finds the row, the secret (32 base62 chars, ~190 bits) proves possession and is
stored only as SHA-256, and a CRC32 checksum (6 base62 chars) rejects typos and random strings
without touching the database. The marker makes leaked tokens easy to scan for, and tells the two
kinds apart before any lookup (a collector token is never a personal one, and back).
"""

from __future__ import annotations

import hashlib
import secrets
import string
import zlib
from typing import NamedTuple

MARKER = "gkc_"
PERSONAL_MARKER = "gkp_"
ALPHABET = string.digits + string.ascii_letters
PREFIX_LEN = 8
SECRET_LEN = 32
CHECKSUM_LEN = 6


class TokenParts(NamedTuple):
    prefix: str
    secret: str


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, rem = divmod(number, 62)
        chars.append(ALPHABET[rem])
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), CHECKSUM_LEN)


def generate(marker: str = MARKER) -> tuple[str, TokenParts]:
    """A new token string and its parts."""
    prefix = "".join(secrets.choice(ALPHABET) for _ in range(PREFIX_LEN))
    secret = "".join(secrets.choice(ALPHABET) for _ in range(SECRET_LEN))
    body = f"{marker}{prefix}_{secret}"
    return body + _checksum(body), TokenParts(prefix, secret)


def parse(token: str, marker: str = MARKER) -> TokenParts | None:
    """The parts of a well-formed token, or None (without any database access)."""
    if len(token) != len(marker) + PREFIX_LEN + 1 + SECRET_LEN + CHECKSUM_LEN:
        return None
    if not token.startswith(marker):
        return None
    body, checksum = token[:-CHECKSUM_LEN], token[-CHECKSUM_LEN:]
    if not secrets.compare_digest(_checksum(body), checksum):
        return None
    prefix, sep, secret = body[len(marker) :].partition("_")
    if sep != "_" or len(prefix) != PREFIX_LEN or len(secret) != SECRET_LEN:
        return None
    return TokenParts(prefix, secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
