"""Image references, parsed and normalized the way Docker does.

``busybox`` → ``docker.io/library/busybox:latest``; ``host:5000/a/b:tag``;
``name@sha256:…``. The grammar is distribution/reference's.
"""
import re

from ..errors import MinirunError

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
DOMAIN_RE = re.compile(rf"{_HOST}(?::[0-9]+)?")
REPO_PATH_RE = re.compile(rf"{PATH_COMPONENT}(?:/{PATH_COMPONENT})*")
TAG_RE = re.compile(r"[\w][\w.-]{0,127}")
SHA256_RE = re.compile(r"sha256:[a-f0-9]{64}")
NAME_MAX = 255


class InvalidReference(MinirunError, ValueError):
    pass


class Reference:
    """A normalized image reference: domain, path (``library/busybox``), tag, digest."""
    __slots__ = ("domain", "path", "tag", "digest")

    def __init__(self, domain, path, tag=None, digest=None):
        self.domain, self.path, self.tag, self.digest = domain, path, tag, digest

    def __eq__(self, other):
        return isinstance(other, Reference) and str(self) == str(other)

    def __hash__(self):
        return hash(str(self))

    def __repr__(self):
        return f"Reference({str(self)!r})"

    @property
    def repository(self):
        """Fully qualified repository name: ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_repository(self):
        """What ``docker images`` shows: ``busybox``, ``me/app``, ``host:5000/x``."""
        if self.domain == DEFAULT_DOMAIN:
            return self.path.removeprefix(OFFICIAL_PREFIX)
        return self.repository

    def __str__(self):
        s = self.repository
        if self.tag:
            s += ":" + self.tag
        if self.digest:
            s += "@" + self.digest
        return s


def split_domain(name):
    """Split ``host:5000/a/b`` into (domain, path) with Docker's defaults."""
    first, sep, rest = name.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost"
                   and first.lower() == first):
        domain, path = DEFAULT_DOMAIN, name
    else:
        domain, path = first, rest
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    return domain, path


def parse(text, default_tag=True):
    """Parse and normalize *text*; raise InvalidReference with a clear message."""
    if not text:
        raise InvalidReference("invalid reference format: empty image name")
    name, digest = text, None
    if "@" in text:
        name, _, digest = text.partition("@")
        # The grammar admits any algorithm; minirun verifies sha256 only.
        if not SHA256_RE.fullmatch(digest):
            raise InvalidReference(f"invalid reference format: bad or unsupported digest "
                                 f"in {text!r}")
    tag = None
    # A tag follows the last ':' that comes after the last '/' (a port has a '/' after it).
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name, tag = name[:colon], name[colon + 1:]
        if not TAG_RE.fullmatch(tag):
            raise InvalidReference(f"invalid reference format: bad tag in {text!r}")
    if len(name) > NAME_MAX:
        raise InvalidReference(f"invalid reference format: repository name longer than {NAME_MAX}")
    domain, path = split_domain(name)
    if not DOMAIN_RE.fullmatch(domain):
        raise InvalidReference(f"invalid reference format: bad registry host in {text!r}")
    if not REPO_PATH_RE.fullmatch(path):
        if path.lower() != path and REPO_PATH_RE.fullmatch(path.lower()):
            raise InvalidReference(f"invalid reference format: repository name ({path}) must be lowercase")
        raise InvalidReference(f"invalid reference format: {text!r}")
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def looks_like_id(text):
    """A full or short image ID (hex, optionally ``sha256:``-prefixed)."""
    t = text.removeprefix("sha256:")
    return bool(re.fullmatch(r"[a-f0-9]{6,64}", t))
