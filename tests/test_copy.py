"""docker cp both ways, running and stopped containers, and the attacks on it: symlinks in the
container that point at the host's files (CVE-2018-15664, CVE-2019-14271), a symlink swapped
in during the copy, hostile tars."""
import io
import os
import subprocess
import tarfile
import threading
import time

import pytest
from test_attach import docker, needs_docker

pytestmark = pytest.mark.root


@needs_docker
def test_docker_cp_both_ways_with_a_running_container(daemon, tmp_path):
    daemon.cli("run", "-d", "--name", "box", "busybox", "sleep", "600")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("A\n")
    (src / "sub" / "b.txt").write_text("B\n")
    os.symlink("a.txt", src / "link")
    assert docker(daemon, "cp", str(src), "box:/tmp").returncode == 0      # into a dir
    assert docker(daemon, "cp", str(src / "a.txt"), "box:/renamed.txt").returncode == 0
    assert docker(daemon, "cp", f"{src}/.", "box:/etc").returncode == 0    # the content
    out = daemon.cli("exec", "box", "sh", "-c",
                     "cat /tmp/src/a.txt /tmp/src/sub/b.txt /renamed.txt /etc/a.txt; "
                     "readlink /tmp/src/link; stat -c %u:%g /tmp/src/a.txt").stdout
    assert out == "A\nB\nA\nA\na.txt\n0:0\n"                              # root's, as Docker
    daemon.cli("exec", "box", "sh", "-c", "mkdir -p /data/d && echo in > /data/d/f && "
                                          "ln -s /etc/passwd /data/pw")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    assert docker(daemon, "cp", "box:/data", str(out_dir)).returncode == 0
    assert (out_dir / "data" / "d" / "f").read_text() == "in\n"
    assert os.readlink(out_dir / "data" / "pw") == "/etc/passwd"        # a link stays a link
    assert docker(daemon, "cp", "box:/data/d/f", str(tmp_path / "f2")).returncode == 0
    assert (tmp_path / "f2").read_text() == "in\n"
    p = docker(daemon, "cp", "box:/nope", str(tmp_path))
    assert p.returncode != 0 and (b"Could not find the file /nope" in p.stderr       # 28
                                  or b"No such container:path: box:/nope" in p.stderr)  # 20.10
    # minirun's own cp, and - as a tar on stdout
    daemon.cli("cp", "box:/data/d/f", str(tmp_path / "f3"))
    assert (tmp_path / "f3").read_text() == "in\n"
    raw = subprocess.run(daemon.minirun.argv("cp", "box:/data/d", "-"), capture_output=True,
                         env=daemon.minirun.env({"MINIRUN_HOST": "unix://" + daemon.sock})
                         ).stdout
    assert tarfile.open(fileobj=io.BytesIO(raw)).getnames() == ["d", "d/f"]
    daemon.cli("cp", str(src / "a.txt"), "box:/mine.txt")
    assert daemon.cli("exec", "box", "cat", "/mine.txt").stdout == "A\n"


def test_cp_with_a_stopped_container_and_its_volume(daemon, tmp_path):
    cid = daemon.cli("create", "-v", "vol:/v", "busybox", "cat", "/v/in.txt",
                     "/upper.txt").stdout.strip()
    (tmp_path / "in.txt").write_text("to the volume\n")
    (tmp_path / "upper.txt").write_text("to the container\n")
    daemon.cli("cp", str(tmp_path / "in.txt"), f"{cid}:/v/")
    daemon.cli("cp", str(tmp_path / "upper.txt"), f"{cid}:/")
    path = os.path.join(daemon.minirun.root, "volumes", "vol", "_data", "in.txt")
    assert open(path).read() == "to the volume\n"                      # in the volume itself
    daemon.cli("start", cid)
    assert daemon.cli("wait", cid).stdout.strip() == "0"
    assert daemon.cli("logs", cid).stdout == "to the volume\nto the container\n"
    daemon.cli("cp", f"{cid}:/upper.txt", str(tmp_path / "back"))     # stopped again
    assert (tmp_path / "back").read_text() == "to the container\n"


def test_symlinks_in_the_container_never_reach_the_hosts_files(daemon, tmp_path):
    """CVE-2018-15664 / CVE-2019-14271: the container's links to / and ../../.. are the
    container's /, both when copying out and in, running or stopped."""
    marker = f"/tmp/minirun-cp-marker-{os.getpid()}"
    with open(marker, "w") as f:
        f.write("HOST SECRET\n")
    try:
        daemon.cli("run", "-d", "--name", "evil", "busybox", "sh", "-c",
                   f"ln -s / /root-link; ln -s ../../../../.. /up; ln -s /tmp /t; "
                   f"echo container > {marker}; sleep 600")
        time.sleep(0.5)
        for path in (f"/root-link{marker}", f"/up{marker}", f"/t/{os.path.basename(marker)}"):
            daemon.cli("cp", f"evil:{path}", str(tmp_path / "got"))
            assert (tmp_path / "got").read_text() == "container\n", path
            os.unlink(tmp_path / "got")
        (tmp_path / "payload").write_text("written\n")
        for dest in ("/root-link/tmp/", "/up/tmp/", "/t/"):
            daemon.cli("cp", str(tmp_path / "payload"), f"evil:{dest}")
        assert not os.path.exists("/tmp/payload")                       # not the host's /tmp
        assert daemon.cli("exec", "evil", "cat", "/tmp/payload").stdout == "written\n"
        daemon.cli("stop", "-t", "0", "evil")
        daemon.cli("cp", f"evil:/up{marker}", str(tmp_path / "got"))   # stopped: the same
        assert (tmp_path / "got").read_text() == "container\n"
        daemon.cli("cp", str(tmp_path / "payload"), "evil:/up/tmp/again")
        assert not os.path.exists("/tmp/again")
        assert open(marker).read() == "HOST SECRET\n"
    finally:
        os.unlink(marker)


def test_renames_elsewhere_on_the_host_do_not_fail_a_walk_through_dotdot(tmp_path):
    """The kernel fails a walk through ".." inside a root with EAGAIN when anything on the
    host is renamed meanwhile (CI's cp of /up/... failed so once, while minirund renamed its
    state files). The walk is retried: thousands of walks under a storm of renames all
    resolve, and still inside the root."""
    from minirun.engine import copy
    (tmp_path / "root" / "a" / "b").mkdir(parents=True)
    (tmp_path / "root" / "a" / "file").write_text("inside\n")
    os.symlink("../../../../..", tmp_path / "root" / "a" / "b" / "up")
    (tmp_path / "churn").mkdir()
    (tmp_path / "churn" / "x").write_text("")
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            os.rename(tmp_path / "churn" / "x", tmp_path / "churn" / "y")
            os.rename(tmp_path / "churn" / "y", tmp_path / "churn" / "x")
    thread = threading.Thread(target=churn)
    thread.start()
    root = os.open(tmp_path / "root", os.O_PATH | os.O_DIRECTORY)
    try:
        for _ in range(5000):
            st, name, _link = copy.path_stat(root, "/a/b/up/a/b/../file")
            assert (name, st.st_size) == ("file", len("inside\n"))
    finally:
        stop.set()
        thread.join()
        os.close(root)


def test_entries_removed_or_swapped_during_a_copy_out_neither_stop_nor_escape_it(tmp_path):
    """A running container removes its directories and swaps links to / in for them while
    they are copied out: each copy completes, and holds the directories and links only,
    never what a link points at. (Before, a directory gone between its stat and its open
    ended the stream half-sent.)"""
    from minirun.engine import copy
    names = [f"d{i}" for i in range(50)]
    for name in names:
        (tmp_path / "root" / "t" / name).mkdir(parents=True)
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            for name in names:
                here = tmp_path / "root" / "t" / name
                os.rmdir(here)
                os.symlink("/", here)
                os.unlink(here)
                os.mkdir(here)
    thread = threading.Thread(target=churn)
    thread.start()
    root = os.open(tmp_path / "root", os.O_PATH | os.O_DIRECTORY)
    try:
        for _ in range(300):
            tar = tarfile.open(fileobj=io.BytesIO(b"".join(copy.tar_path(root, "/t"))))
            members = tar.getmembers()
            assert members[0].name == "t"
            assert {m.name for m in members[1:]} <= {f"t/{name}" for name in names}
            assert all(m.isdir() or (m.issym() and m.linkname == "/") for m in members)
    finally:
        stop.set()
        thread.join()
        os.close(root)


def test_a_symlink_swapped_in_during_the_copy_does_not_escape(daemon, tmp_path):
    """The container turns /w/d into a link to / (and back) as fast as it can while files are
    copied into /w/d: each copy lands in the container or fails, never on the host."""
    name = f"swap-{os.getpid()}"
    daemon.cli("run", "-d", "--name", "racer", "busybox", "sh", "-c",
               "mkdir -p /w; while :; do mkdir -p /w/d; rmdir /w/d; ln -s / /w/d; rm /w/d; "
               "done")
    (tmp_path / name).write_text("x\n")
    for _ in range(40):
        daemon.cli("cp", str(tmp_path / name), "racer:/w/d/", check=False)
        daemon.cli("cp", "racer:/w/d/etc/hostname", str(tmp_path / "out"), check=False)
    assert not os.path.exists(f"/{name}")
    if os.path.exists(tmp_path / "out"):                    # the container's, if any
        assert (tmp_path / "out").read_text() == _cid(daemon, "racer")[:12] + "\n"


def _cid(daemon, name):
    import json
    return json.loads(daemon.cli("inspect", name).stdout)[0]["Id"]


def _put(daemon, cid, path, body):
    import http.client
    import socket
    conn = http.client.HTTPConnection("localhost")
    conn.sock = socket.socket(socket.AF_UNIX)
    conn.sock.connect(daemon.sock)
    conn.request("PUT", f"/v1.44/containers/{cid}/archive?path={path}", body=body,
                 headers={"Content-Type": "application/x-tar"})
    resp = conn.getresponse()
    return resp.status, resp.read()


def _tar(*entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _member(name, kind=tarfile.REGTYPE, data=b"", link=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    if kind == tarfile.REGTYPE:
        info.size = len(data)
    return info, data if kind == tarfile.REGTYPE else None


def test_hostile_tars_are_refused_in_one_line_and_change_nothing_outside(daemon):
    cid = daemon.cli("run", "-d", "busybox", "sleep", "600").stdout.strip()
    attacks = [
        _tar(_member("../../../../../tmp/escaped-cp", data=b"x")),
        _tar(_member("/tmp/escaped-cp", data=b"x")),
        _tar(_member("ln", tarfile.SYMTYPE, link="/tmp"), _member("ln/escaped-cp", data=b"x")),
        _tar(_member("hl", tarfile.LNKTYPE, link="../../../../etc/passwd")),
        _tar(_member("dev", tarfile.CHRTYPE)),
        b"this is not a tar" * 100,
    ]
    for body in attacks:
        status, text = _put(daemon, cid, "/tmp", body)
        assert 400 <= status < 500, (status, text)
        assert text.count(b"\n") == 0 and b"Traceback" not in text
    assert not os.path.exists("/tmp/escaped-cp")
    status, text = _put(daemon, cid, "/etc/passwd", _tar(_member("x", data=b"x")))
    assert status == 400 and b"not a directory" in text
    status, text = _put(daemon, cid, "/nope", _tar(_member("x", data=b"x")))
    assert status == 404
    status, _ = _put(daemon, cid, "/tmp", _tar(_member(".wh.x", data=b"plain")))
    assert status == 200                                   # a plain file here, not a whiteout
    assert daemon.cli("exec", cid, "cat", "/tmp/.wh.x").stdout == "plain"


def test_a_stopped_containers_copy_lets_go_of_its_file_system_at_once(daemon, tmp_path):
    """A copy mounts a stopped container's overlay; it is unmounted before the copy answers,
    so a start (or another copy) right after finds its work directory free."""
    cid = daemon.cli("create", "busybox", "cat", "/n").stdout.strip()
    for i in range(8):
        (tmp_path / "n").write_text(f"{i}\n")
        daemon.cli("cp", str(tmp_path / "n"), f"{cid}:/n")
        daemon.cli("cp", f"{cid}:/n", str(tmp_path / "back"))
        daemon.cli("start", cid)
        assert daemon.cli("wait", cid).stdout.strip() == "0"
    assert daemon.cli("logs", "--tail", "1", cid).stdout == "7\n"
