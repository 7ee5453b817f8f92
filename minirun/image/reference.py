"""Image references, parsed and normalized the way Docker does.

``busybox`` → ``docker.io/library/busybox:latest``; ``host:5000/a/b:tag``;
``name@sha256:…``. The grammar is distribution/reference's.
"""
from ..charsets import ALNUM, DIGITS, HEX, LOWER_ALNUM, LOWER_HEX, only
from ..errors import MinirunError
from .digest import is_sha256

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
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


# distribution/reference's grammar, checked by hand: see charsets.py for why not with re.

def valid_tag(tag):
    """``[\\w][\\w.-]{0,127}``, \\w being ASCII (as in Go): letters, digits, underscore."""
    return 0 < len(tag) <= 128 and tag[0] in ALNUM + "_" and only(tag, ALNUM + "_.-")


def valid_domain(domain):
    """``host[:port]``: a host is labels of letters, digits and inner hyphens joined by dots,
    or an IPv6 address in brackets."""
    if domain.startswith("["):
        close = domain.find("]")                  # -1: no host, and the check fails
        host, port = domain[:close + 1], domain[close + 1:]
        host_ok = close > 1 and only(host[1:-1], HEX + ":")
    else:
        host, colon, port = domain.partition(":")
        port = colon + port
        host_ok = all(label and only(label, ALNUM + "-") and "-" not in (label[0], label[-1])
                      for label in host.split("."))
    return host_ok and (port == "" or (port[0] == ":" and only(port[1:], DIGITS)
                                       and len(port) > 1))


_LETTERS_TO_SPACES = str.maketrans(LOWER_ALNUM, " " * len(LOWER_ALNUM))


def valid_path(path):
    """``component(/component)*``; a component is runs of ``[a-z0-9]`` joined by one ``.``,
    one ``_``, ``__``, or any number of ``-``."""
    for component in path.split("/"):
        if not (component and only(component, LOWER_ALNUM + "._-")
                and component[0] in LOWER_ALNUM and component[-1] in LOWER_ALNUM):
            return False
        separators = component.translate(_LETTERS_TO_SPACES).split()
        if not all(s in (".", "_", "__") or only(s, "-") for s in separators):
            return False
    return True


def parse(text, default_tag=True):
    """Parse and normalize *text*; raise InvalidReference with a clear message."""
    if not text:
        raise InvalidReference("invalid reference format: empty image name")
    name, digest = text, None
    if "@" in text:
        name, _, digest = text.partition("@")
        # The grammar admits any algorithm; minirun verifies sha256 only.
        if not is_sha256(digest):
            raise InvalidReference(f"invalid reference format: bad or unsupported digest "
                                 f"in {text!r}")
    tag = None
    # A tag follows the last ':' that comes after the last '/' (a port has a '/' after it).
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name, tag = name[:colon], name[colon + 1:]
        if not valid_tag(tag):
            raise InvalidReference(f"invalid reference format: bad tag in {text!r}")
    if len(name) > NAME_MAX:
        raise InvalidReference(f"invalid reference format: repository name longer than {NAME_MAX}")
    domain, path = split_domain(name)
    if not valid_domain(domain):
        raise InvalidReference(f"invalid reference format: bad registry host in {text!r}")
    if not valid_path(path):
        if path.lower() != path and valid_path(path.lower()):
            raise InvalidReference(f"invalid reference format: repository name ({path}) must be lowercase")
        raise InvalidReference(f"invalid reference format: {text!r}")
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def looks_like_id(text):
    """A full or short image ID (hex, optionally ``sha256:``-prefixed)."""
    t = text.removeprefix("sha256:")
    return 6 <= len(t) <= 64 and only(t, LOWER_HEX)
