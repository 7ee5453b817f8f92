"""The README's set-up commands, as a new user types them: as root with or without sudo."""
import os
import re
import shutil
import subprocess
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme_setup_commands():
    text = open(os.path.join(REPO, "README.md")).read()
    block = text.split("## Set-up", 1)[1].split("\n\n", 2)[1]
    return [line.split("#")[0].split() for line in block.splitlines() if line.strip()]


def test_the_readme_names_two_commands_that_need_no_sudo():
    commands = readme_setup_commands()
    assert [c[0] for c in commands] == ["scripts/setup", "scripts/test"]
    for argv in commands:
        script = open(os.path.join(REPO, argv[0])).read()
        assert re.search(r'^as_root "\$@"$', script, re.M), argv[0]


def as_root(user=None):
    """install.sh's as_root in a shell whose PATH has no sudo (as on a fresh Debian)."""
    bin_dir = tempfile.mkdtemp(prefix="minirun-nosudo-")      # reachable by any user
    try:
        os.chmod(bin_dir, 0o755)
        for tool in ("bash", "id"):
            os.symlink(shutil.which(tool), os.path.join(bin_dir, tool))
        cmd = [os.path.join(bin_dir, "bash"), "-c",
               '. scripts/lib/install.sh; as_root; echo "went on as $(id -u)"']
        if user is not None:
            cmd = [shutil.which("setpriv"), f"--reuid={user}", f"--regid={user}",
                   "--clear-groups", *cmd]
        return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                              env={"PATH": bin_dir})
    finally:
        shutil.rmtree(bin_dir)


@pytest.mark.root
def test_as_root_without_sudo_just_runs():
    p = as_root()
    assert p.returncode == 0 and p.stdout == "went on as 0\n"


@pytest.mark.root
def test_another_user_without_sudo_is_told_what_to_do():
    p = as_root(65534)
    assert p.returncode == 1 and "there is no sudo: run it as root" in p.stderr
