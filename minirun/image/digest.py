"""Digests: the names of content-addressed things, checked before use."""
import re

from ..errors import MinirunError

SHA256 = re.compile(r"sha256:[a-f0-9]{64}")


class DigestError(MinirunError, ValueError):
    pass


def check_digest(digest):
    """Return *digest* if it is a well-formed sha256 digest, else raise."""
    if not isinstance(digest, str) or not SHA256.fullmatch(digest):
        raise DigestError(f"invalid or unsupported digest: {digest!r}")
    return digest


def sha256_bytes(data):
    import hashlib   # loading OpenSSL is slow; a container start does not need it
    return "sha256:" + hashlib.sha256(data).hexdigest()


def hex_of(digest):
    return check_digest(digest).split(":", 1)[1]
