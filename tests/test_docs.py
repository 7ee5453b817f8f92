"""The commands in docs/ are run, so a page that drifts from the code fails here.

A fenced block marked ``runnable`` holds commands, one a line, each of which must succeed
against a fresh state root with busybox loaded, run from the checkout's top directory; a ``# →`` line after a command names
text its output must contain.
"""
import glob
import os
import re
import subprocess

import pytest

from conftest import REPO, SLACK

pytestmark = pytest.mark.root
BLOCK = re.compile(r"^```runnable\n(.*?)^```", re.M | re.S)


def runnable(path):
    """[(command, [expected texts])] of every runnable block of a page."""
    steps = []
    for block in BLOCK.findall(open(path).read()):
        for line in block.splitlines():
            if line.startswith("# →"):
                steps[-1][1].append(line[len("# →"):].strip())
            elif line.strip() and not line.startswith("#"):
                steps.append((line, []))
    return steps


PAGES = sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))


@pytest.mark.parametrize("page", [p for p in PAGES if runnable(p)],
                         ids=lambda p: os.path.basename(p))
def test_a_pages_commands_do_what_it_says(loaded, page):
    env = dict(loaded.env(), PATH=os.path.join(REPO, ".venv", "bin") + ":" + os.environ["PATH"])
    for command, expected in runnable(page):
        p = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True,
                           timeout=120 * SLACK, cwd=REPO)      # the pages say: from the checkout
        assert p.returncode == 0, f"{command}\n{p.stdout}{p.stderr}"
        for text in expected:
            assert text in p.stdout, f"{command}: {text!r} not in\n{p.stdout}"
