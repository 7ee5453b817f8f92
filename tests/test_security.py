"""The escape suite: what a hostile container, image or local user tries, and must not get.

(The chroot breakout is in test_run.py, the leaked-descriptor working directory and the
/proc/<pid>/fd and /exe scanning during exec in test_forkserver.py.)
"""
import json
import os
import stat
import subprocess

import pytest

pytestmark = pytest.mark.root


def sh(m, script, *flags):
    return m.run("--rm", *flags, "busybox", "sh", "-c", script)


# -- seccomp -------------------------------------------------------------------------------
def test_every_container_runs_under_dockers_seccomp_profile(loaded):
    p = sh(loaded, "grep '^Seccomp:' /proc/self/status; unshare -U -r true; echo rc=$?")
    assert "Seccomp:\t2" in p.stdout                  # filter mode
    assert "rc=1" in p.stdout and "Operation not permitted" in p.stderr   # no user namespaces
    # What the profile keeps: a normal program's calls, and clone without namespace flags.
    assert sh(loaded, "mkdir /x && (sleep 0 &) && wait && echo fine").stdout == "fine\n"


def test_seccomp_unconfined_and_privileged_have_no_filter(loaded):
    for flags in (["--security-opt", "seccomp=unconfined"], ["--privileged"]):
        p = sh(loaded, "grep '^Seccomp:' /proc/self/status; unshare -U -r true && echo made",
               *flags)
        assert "Seccomp:\t0" in p.stdout and "made" in p.stdout, (flags, p.stderr)


def test_a_capability_opens_what_the_profile_keeps_for_it(loaded):
    """With CAP_SYS_ADMIN the profile allows unshare, as Docker's does."""
    p = sh(loaded, "unshare -U true && echo made", "--cap-add", "SYS_ADMIN")
    assert p.stdout == "made\n", p.stderr


def test_a_profile_of_ones_own_in_dockers_format(loaded, tmp_path):
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                             "errnoRet": 13}]}
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    p = sh(loaded, "mkdir /made || echo refused", "--security-opt", f"seccomp={path}")
    assert "refused" in p.stdout and "Permission denied" in p.stderr


@pytest.mark.parametrize("caps", [None, ("SYS_ADMIN",)])
def test_dockers_profile_in_the_oci_form_is_the_same_filter(tmp_path, caps):
    """as_oci (what a bundle's linux.seccomp holds, for runc, crun or minirun-runc): Docker's
    profile with its includes and excludes resolved compiles to the very same program."""
    from minirun.runtime.seccomp import as_oci, compile_profile
    from minirun.runtime.seccomp_default import PROFILE
    from minirun.runtime.spec import DEFAULT_CAPS
    caps = DEFAULT_CAPS + (caps or ())
    oci = as_oci(PROFILE, caps)
    assert not any("includes" in r or "excludes" in r for r in oci["syscalls"])
    assert "archMap" not in oci and oci["architectures"]
    docker = compile_profile(PROFILE, caps, str(tmp_path / "a"))
    resolved = compile_profile(json.loads(json.dumps(oci)), caps, str(tmp_path / "b"))
    assert open(docker, "rb").read() == open(resolved, "rb").read()


def test_the_default_filter_remembered_by_the_daemon_is_the_profiles_and_outlives_a_cleared_cache(
        tmp_path):
    """minirund makes the default profile's cache key once: what it hands out is the program
    compile_profile makes, for each set of capabilities, and made again once the cache
    directory is gone."""
    import shutil
    from minirun.runtime.seccomp import compile_profile, default_filter
    from minirun.runtime.seccomp_default import PROFILE
    from minirun.runtime.spec import DEFAULT_CAPS
    cache = str(tmp_path / "cache")
    for caps in (DEFAULT_CAPS, DEFAULT_CAPS + ("SYS_ADMIN",)):
        first = default_filter(caps, cache)
        assert default_filter(tuple(reversed(caps)), cache) == first
        program = open(first, "rb").read()
        assert program == open(compile_profile(PROFILE, caps, str(tmp_path / "x")), "rb").read()
        shutil.rmtree(cache)
        assert open(default_filter(caps, cache), "rb").read() == program
    assert open(default_filter(DEFAULT_CAPS, cache), "rb").read() != program   # by caps


@pytest.mark.parametrize("profile,message", [
    ("{not json", "is not JSON"),
    (json.dumps({"defaultAction": "SCMP_ACT_NOTIFY", "syscalls": []}), "unknown or unsupported"),
    (json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]}), "bad argument"),
])
def test_a_bad_profile_is_one_clear_line_and_leaves_nothing(loaded, tmp_path, profile, message):
    path = tmp_path / "bad.json"
    path.write_text(profile)
    p = sh(loaded, "true", "--security-opt", f"seccomp={path}")
    assert p.returncode == 125 and message in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert loaded.containers().list() == []


def test_exec_runs_under_the_containers_filter(daemon):
    daemon.cli("run", "-d", "--name", "sc", "busybox", "sleep", "300")
    p = daemon.cli("exec", "sc", "sh", "-c", "grep '^Seccomp:' /proc/self/status; "
                   "unshare -U true || echo refused", check=False)
    assert "Seccomp:\t2" in p.stdout and "refused" in p.stdout


def test_a_profile_given_to_the_daemon_as_the_docker_cli_sends_it(daemon, tmp_path):
    """docker run --security-opt seccomp=FILE sends the file's JSON text; minirun -d too."""
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}))
    daemon.cli("run", "-d", "--name", "own", "--security-opt", f"seccomp={path}", "busybox",
               "sh", "-c", "mkdir /d || echo refused; sleep 300")
    from conftest import wait_for
    assert wait_for(lambda: "refused" in daemon.cli("logs", "own").stdout)
    opts = json.loads(daemon.cli("inspect", "own").stdout)[0]["HostConfig"]["SecurityOpt"]
    assert opts[0].startswith('seccomp={"defaultAction"')


# -- the state root is root's --------------------------------------------------------------
def test_no_other_user_reads_the_state_root(loaded):
    loaded.run("--name", "secret", "-e", "PASSWORD=hunter2", "busybox", "true")
    root = loaded.root
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o710
    for name in ("state.db", "state.db-wal"):
        if os.path.exists(os.path.join(root, name)):
            assert stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode) == 0o600, name
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    p = subprocess.run([*nobody, "cat", os.path.join(root, "state.db")], capture_output=True)
    assert p.returncode != 0 and b"hunter2" not in p.stdout
    # An older root's modes are repaired by the next command.
    os.chmod(root, 0o755)
    os.chmod(os.path.join(root, "state.db"), 0o644)
    loaded("images")
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o710
    assert stat.S_IMODE(os.stat(os.path.join(root, "state.db")).st_mode) == 0o600


# -- what a container leaves behind --------------------------------------------------------
def test_a_very_deep_tree_in_the_container_is_removed(loaded):
    """1100 nested directories made rm fail with RecursionError: the container stayed."""
    p = sh(loaded, "i=0; while [ $i -lt 1500 ]; do mkdir d; cd d; i=$((i+1)); done; "
                   "touch leaf; echo made")
    assert p.returncode == 0 and p.stdout == "made\n", p.stderr
    assert loaded.containers().list() == []
    assert os.listdir(os.path.join(loaded.root, "containers")) == []
