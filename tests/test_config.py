"""The global options mean the same to click and to ``run``'s click-free fast path."""
import os

import pytest

from minirun import config
from minirun.cli.app import cli
from minirun.cli.runflags import parse_fast

HERE = os.getcwd()
CASES = [
    ([], {}),
    (["--root", "/tmp/r"], {}),
    (["--root=/tmp/r"], {}),
    ([], {"MINIRUN_ROOT": "/tmp/env"}),
    (["--root", "/tmp/flag"], {"MINIRUN_ROOT": "/tmp/env"}),
    ([], {"MINIRUN_ROOT": ""}),                      # empty: the default, on both paths
    (["--root", "relative"], {}),
    (["-H", "unix:///tmp/s.sock"], {}),
    (["--host", "unix:///tmp/s.sock", "--debug"], {}),
    ([], {"MINIRUN_HOST": "unix:///tmp/e.sock"}),
    ([], {"MINIRUN_HOST": ""}),
    (["--debug", "--root", "/tmp/x", "-H", "/tmp/p.sock"], {"MINIRUN_HOST": "unix:///e"}),
]


def through_click(argv, environ, monkeypatch):
    for name in (config.ROOT_ENV, config.HOST_ENV):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    ctx = cli.make_context("minirun", [*argv, "run", "busybox", "true"])
    with ctx:
        ctx.invoke(cli.callback, **ctx.params)
    return config.Globals(ctx.obj.root, ctx.obj.host, ctx.obj.debug)


@pytest.mark.parametrize("argv,environ", CASES)
def test_both_parsers_agree(argv, environ, monkeypatch):
    fast, _ = parse_fast([*argv, "run", "busybox", "true"], environ)
    assert fast == through_click(argv, environ, monkeypatch)


def test_what_they_agree_on():
    assert config.resolve(None, None, False, {"MINIRUN_ROOT": ""}).root == config.DEFAULT_ROOT
    assert config.resolve("rel", None, False, {}).root == os.path.join(HERE, "rel")
    assert config.resolve(None, "", False, {"MINIRUN_HOST": ""}).host is None
