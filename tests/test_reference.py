import random
import re

import pytest

from minirun.image.reference import (InvalidReference, looks_like_id, parse, valid_domain,
                                     valid_path, valid_tag)

VALID = [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest"),
    ("index.docker.io/library/busybox", "docker.io/library/busybox:latest"),
    ("me/app:v1.2_rc-3", "docker.io/me/app:v1.2_rc-3"),
    ("localhost/app", "localhost/app:latest"),
    ("localhost:5000/a/b:tag", "localhost:5000/a/b:tag"),
    ("host:5000/a/b", "host:5000/a/b:latest"),
    ("registry.example.com/team/x__y.z-w", "registry.example.com/team/x__y.z-w:latest"),
    ("127.0.0.1:5000/app", "127.0.0.1:5000/app:latest"),
    ("[::1]:5000/app:t", "[::1]:5000/app:t"),
    ("UPPER/case", "UPPER/case:latest"),   # an upper-case first part is a host
    ("busybox@sha256:" + "a" * 64, "docker.io/library/busybox@sha256:" + "a" * 64),
    ("busybox:1@sha256:" + "b" * 64, "docker.io/library/busybox:1@sha256:" + "b" * 64),
]

INVALID = [
    "", "Busybox", "busybox:", ":tag", "a//b", "-a", "a-", "upper/Case", "busybox:-bad",
    "busybox:" + "t" * 129, "busybox@sha256:abc", "busybox@md5:zz", "a/b/../c",
    "host:port/x", "a" * 256, "busybox tag", "bad_host_/x", "busybox:t\u00e4g",
]


@pytest.mark.parametrize("text,expected", VALID)
def test_valid_references_normalize_like_docker(text, expected):
    assert str(parse(text)) == expected


@pytest.mark.parametrize("text", INVALID)
def test_invalid_references_are_rejected(text):
    with pytest.raises(InvalidReference, match="invalid reference format"):
        parse(text)


def test_familiar_names_shown_like_docker_images():
    assert parse("busybox").familiar_repository == "busybox"
    assert parse("me/app").familiar_repository == "me/app"
    assert parse("localhost:5000/a").familiar_repository == "localhost:5000/a"


# distribution/reference's grammar as its regular expressions say it (\w being ASCII, as in
# Go). minirun checks it by hand, to keep re off the start path: the two must agree.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
GRAMMAR = {
    valid_domain: re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"),
    valid_path: re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*"),
    valid_tag: re.compile(r"[\w][\w.-]{0,127}", re.ASCII),
}


@pytest.mark.parametrize("check", GRAMMAR, ids=lambda f: f.__name__)
def test_the_hand_written_checks_accept_exactly_what_the_grammar_does(check):
    rnd = random.Random(16)                        # the same strings every run
    alphabet = "aZ09-._/:[]fF_\u00e4"
    texts = ["".join(rnd.choice(alphabet) for _ in range(rnd.randrange(9)))
             for _ in range(40_000)]
    wrong = [t for t in texts if check(t) != bool(GRAMMAR[check].fullmatch(t))]
    assert not wrong, wrong[:10]


def test_image_ids_full_short_and_prefixed():
    assert looks_like_id("c57460") and looks_like_id("sha256:" + "c" * 64)
    assert not looks_like_id("c5746") and not looks_like_id("C57460")
    assert not looks_like_id("c" * 65) and not looks_like_id("busybox")
