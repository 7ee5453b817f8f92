"""diff, commit, history, export, import, save/load through minirund (the docker CLI and
minirun's), and the endpoints dockerd answers without swarm."""
import io
import json
import tarfile

import pytest
from test_attach import docker, needs_docker

pytestmark = pytest.mark.root


@needs_docker
def test_diff_commit_history_and_the_committed_image_runs(daemon):
    daemon.cli("run", "-d", "--name", "work", "busybox", "sh", "-c",
               "echo new > /new.txt; rm /etc/hosts.bak 2>/dev/null; mkdir -p /srv/d; "
               "echo x > /srv/d/f; rm /etc/shadow; echo more >> /etc/group; sleep 600")
    out = ""
    for _ in range(50):
        out = docker(daemon, "diff", "work").stdout.decode()
        if "A /srv/d/f" in out:
            break
    lines = set(out.splitlines())
    assert lines == {"A /new.txt", "A /srv", "A /srv/d", "A /srv/d/f", "D /etc/shadow",
                     "C /etc", "C /etc/group"}, out        # not the mount points of /etc/hosts

    p = docker(daemon, "commit", "-m", "my change", "-a", "me", "--change", 'CMD ["cat", '
               '"/new.txt"]', "--change", "ENV ADDED=1", "work", "mine:v1")
    assert p.returncode == 0, p.stderr
    assert not json.loads(docker(daemon, "inspect", "work").stdout)[0]["State"]["Paused"]
    assert docker(daemon, "run", "--rm", "mine:v1").stdout == b"new\n"
    p = docker(daemon, "run", "--rm", "mine:v1", "sh", "-c",
               "echo $ADDED; cat /srv/d/f; test -e /etc/shadow || echo gone; tail -1 /etc/group")
    assert p.stdout == b"1\nx\ngone\nmore\n", p.stderr
    p = docker(daemon, "history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Comment}}",
               "mine:v1")
    history = p.stdout.decode().splitlines()
    assert history, p.stderr
    assert history[0].endswith("|my change") and "sleep 600" in history[0]
    config = json.loads(docker(daemon, "image", "inspect", "mine:v1").stdout)[0]
    assert config["Author"] == "me" and config["Config"]["Cmd"] == ["cat", "/new.txt"]
    base = json.loads(docker(daemon, "image", "inspect", "busybox").stdout)[0]
    assert config["RootFS"]["Layers"][:-1] == base["RootFS"]["Layers"]   # one more on top
    assert config["Parent"] == base["Id"] and base["Parent"] == ""
    daemon.cli("rm", "-f", "work")


@needs_docker
def test_export_import_save_load_through_the_daemon(daemon, tmp_path):
    daemon.cli("run", "--name", "ex", "busybox", "sh", "-c", "echo exported > /mark")
    data = docker(daemon, "export", "ex").stdout
    names = tarfile.open(fileobj=io.BytesIO(data)).getnames()
    assert "mark" in names and "bin/busybox" in names
    assert not any(n.startswith("proc/") for n in names)          # no mounts, just files
    (tmp_path / "fs.tar").write_bytes(data)
    p = docker(daemon, "import", "--change", 'CMD ["cat", "/mark"]', str(tmp_path / "fs.tar"),
               "flat:1")
    assert p.returncode == 0, p.stderr
    assert docker(daemon, "run", "--rm", "flat:1").stdout == b"exported\n"
    assert daemon.cli("history", "-q", "flat:1").stdout.strip()
    p = docker(daemon, "save", "-o", str(tmp_path / "saved.tar"), "flat:1", "busybox")
    assert p.returncode == 0, p.stderr
    docker(daemon, "rmi", "flat:1")
    p = docker(daemon, "load", "-i", str(tmp_path / "saved.tar"))
    assert b"Loaded image: flat:1" in p.stdout, p.stdout + p.stderr
    assert docker(daemon, "run", "--rm", "flat:1").stdout == b"exported\n"
    # minirun's own import, from stdin
    p = daemon.cli("import", "-", "flat:2", input=None, check=False)
    assert p.returncode != 0                                      # an empty body is no tar
    daemon.cli("rm", "ex")


def test_hostile_loads_and_imports_are_one_line_errors(daemon):
    api = daemon.client().api

    def post(path, body, **params):
        res = api._post(api._url(path), data=body, params=params)
        return res.status_code, res.json().get("message", "") if res.content else ""
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as tar:
        info = tarfile.TarInfo("../../../../tmp/escaped-by-load")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    for path, params in (("/images/load", {}), ("/images/create", {"fromSrc": "-"})):
        for body in (b"not a tar at all" * 10, evil.getvalue()):
            status, message = post(path, body, **params)
            assert 400 <= status < 500, (path, status, message)
            assert message and "\n" not in message and daemon.sock not in message
    status, message = post("/images/create", b"", fromSrc="http://example.com/x.tar")
    assert status == 400 and "not supported" in message
    import os
    assert not os.path.exists("/tmp/escaped-by-load")
    assert [i.tags for i in daemon.client().images.list()] == [["busybox:latest"]]


@needs_docker
def test_what_dockerd_answers_without_swarm_and_system_df(daemon):
    p = docker(daemon, "node", "ls")
    assert p.returncode != 0 and b"not a swarm manager" in p.stderr
    api = daemon.client().api
    import docker as docker_py
    with pytest.raises(docker_py.errors.APIError) as e:
        api.leave_swarm()
    assert e.value.status_code == 503
    daemon.cli("run", "-d", "--name", "df", "-v", "dfvol:/v", "busybox", "sh", "-c",
               "head -c 100000 /dev/zero > /big; sleep 600")
    import time
    time.sleep(1)
    df = api.df()
    assert [c["SizeRw"] >= 100000 for c in df["Containers"]] == [True]
    assert [v["Name"] for v in df["Volumes"]] == ["dfvol"]
    assert df["Images"][0]["RepoTags"] == ["busybox:latest"]
    assert docker(daemon, "system", "df").returncode == 0
    info = api.info()
    assert info["Debug"] is False and info["ExperimentalBuild"] is False


@needs_docker
def test_a_directory_copied_up_only_for_a_mount_point_is_no_change(daemon):
    """/etc is copied up to hold the mount points of /etc/hosts & co.: dockerd keeps those in
    a layer of their own, so `docker diff` after `touch /test` is only "A /test"."""
    cid = docker(daemon, "run", "-d", "busybox", "touch", "/test").stdout.decode().strip()
    docker(daemon, "wait", cid)
    assert docker(daemon, "diff", cid).stdout.decode().splitlines() == ["A /test"]
    image = docker(daemon, "commit", cid).stdout.decode().strip()
    assert docker(daemon, "run", "--rm", image, "sh", "-c", "ls /test; cat /etc/hosts"
                  ).stdout.startswith(b"/test\n127.0.0.1\tlocalhost")   # /etc is the image's
