"""Digests: the names of content-addressed things, checked before use."""
from ..charsets import LOWER_HEX, only
from ..errors import MinirunError


class DigestError(MinirunError, ValueError):
    pass


def is_sha256(text):
    """``sha256:`` and 64 lowercase hex digits (the only algorithm minirun verifies)."""
    return (isinstance(text, str) and len(text) == 71 and text.startswith("sha256:")
            and only(text[7:], LOWER_HEX))


def check_digest(digest):
    """Return *digest* if it is a well-formed sha256 digest, else raise."""
    if not is_sha256(digest):
        raise DigestError(f"invalid or unsupported digest: {digest!r}")
    return digest


def sha256_bytes(data):
    import hashlib   # loading OpenSSL is slow; a container start does not need it
    return "sha256:" + hashlib.sha256(data).hexdigest()


def hex_of(digest):
    return check_digest(digest).split(":", 1)[1]
