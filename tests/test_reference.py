import pytest

from minirun.image.reference import InvalidReference, parse

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
    "host:port/x", "a" * 256, "busybox tag", "bad_host_/x",
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
