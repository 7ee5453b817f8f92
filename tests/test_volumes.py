"""Named volumes, --mount, --volumes-from and image VOLUMEs: through the docker CLI, docker-py
and minirun's own CLI, in the foreground and through minirund."""
import json
import os
import signal
import tarfile

import pytest
from conftest import wait_for
from test_attach import docker, needs_docker

from minirun.image.layout import LayerBuilder, write_layout

pytestmark = pytest.mark.root


def volumes(m):
    return m("volume", "ls", "-q").stdout.split()


@needs_docker
def test_a_named_volume_keeps_its_data_across_containers_and_a_daemon_crash(daemon):
    assert docker(daemon, "volume", "create", "data").stdout == b"data\n"
    p = docker(daemon, "run", "--rm", "-v", "data:/data", "busybox", "sh", "-c",
               "echo kept > /data/f")
    assert p.returncode == 0, p.stderr
    daemon.stop(signal.SIGKILL)
    daemon.start()
    assert docker(daemon, "run", "--rm", "-v", "data:/data:ro", "busybox",
                  "cat", "/data/f").stdout == b"kept\n"
    p = docker(daemon, "run", "--rm", "-v", "data:/data:ro", "busybox", "touch", "/data/x")
    assert p.returncode == 1 and b"Read-only file system" in p.stderr
    doc = json.loads(docker(daemon, "volume", "inspect", "data").stdout)[0]
    assert (doc["Name"], doc["Driver"], doc["Scope"]) == ("data", "local", "local")
    assert open(os.path.join(doc["Mountpoint"], "f")).read() == "kept\n"
    cid = daemon.cli("run", "-d", "-v", "data:/data", "busybox", "sleep", "60").stdout.strip()
    p = docker(daemon, "volume", "rm", "data")
    assert p.returncode == 1 and f"volume is in use - [{cid}]".encode() in p.stderr
    daemon.cli("rm", "-f", cid)
    assert volumes(daemon.cli) == ["data"]                       # rm (without -v) keeps it
    assert docker(daemon, "volume", "rm", "data").returncode == 0
    assert volumes(daemon.cli) == []
    assert not os.path.exists(doc["Mountpoint"])


def test_anonymous_volumes_go_with_rm_v_and_with_rm(daemon):
    cid = daemon.cli("run", "-d", "-v", "/anon", "-v", "named:/named", "busybox",
                     "true").stdout.strip()
    anon = [v for v in volumes(daemon.cli) if v != "named"]
    assert len(anon) == 1 and len(anon[0]) == 64
    daemon.cli("wait", cid)
    daemon.cli("rm", "-v", cid)
    assert volumes(daemon.cli) == ["named"]                      # a named one stays
    daemon.cli("run", "-d", "--rm", "-v", "/anon", "busybox", "true")
    assert wait_for(lambda: volumes(daemon.cli) == ["named"])


def test_an_empty_volume_gets_the_images_files_once(daemon):
    out = daemon.cli("run", "--rm", "-v", "etc:/etc", "busybox", "cat", "/etc/passwd").stdout
    assert out.startswith("root:")
    path = json.loads(daemon.cli("volume", "inspect", "etc").stdout)[0]["Mountpoint"]
    assert {"passwd", "group"} <= set(os.listdir(path))
    assert open(os.path.join(path, "hostname")).read() == ""     # a mount point, not a copy
    os.unlink(os.path.join(path, "group"))
    daemon.cli("run", "--rm", "-v", "etc:/etc", "busybox", "true")
    assert "group" not in os.listdir(path)                         # not copied again
    assert daemon.cli("run", "--rm", "-v", "fresh:/etc:nocopy", "busybox", "ls",
                      "/etc").stdout.split() == ["hostname", "hosts", "resolv.conf"]


def test_a_hostile_images_volume_copy_follows_no_link_and_opens_no_fifo(daemon, tmp_path):
    """The image's VOLUME holds a symlink to the host's /etc (and .. upwards), a FIFO and a
    deep tree: the copy into the volume copies links as links, skips the FIFO, and the host's
    files are never read or written."""
    deep = LayerBuilder().dir("data")
    path = "data"
    for _ in range(40):
        path += "/d"
        deep.dir(path)
    layer = (deep.symlink("data/etc", "/etc").symlink("data/up", "../../../../..")
             .file("data/plain", b"plain\n", uid=1234, gid=5678, mode=0o640))
    layer.add(layer.info("data/fifo", tarfile.FIFOTYPE, 0o644))
    out = str(tmp_path / "oci")
    write_layout(out, [layer.tar_bytes()], {"config": {"Cmd": ["sh"], "Volumes": {"/data": {}}}},
                 "docker.io/library/hostile:1")
    daemon.minirun("load", "-i", out)
    cid = daemon.cli("create", "hostile:1", "x").stdout.strip()   # VOLUME /data: anonymous
    [name] = volumes(daemon.cli)
    daemon.cli("rm", "-v", cid)                             # created only: nothing copied yet
    assert volumes(daemon.cli) == []
    cid = daemon.cli("create", "-v", "hv:/data", "hostile:1", "x").stdout.strip()
    p = daemon.cli("start", cid, check=False)               # copies, then "x" is not found
    assert p.returncode != 0
    vol = json.loads(daemon.cli("volume", "inspect", "hv").stdout)[0]["Mountpoint"]
    assert os.readlink(os.path.join(vol, "etc")) == "/etc"
    assert os.readlink(os.path.join(vol, "up")) == "../../../../.."
    assert sorted(os.listdir(vol)) == ["d", "etc", "plain", "up"]        # no FIFO
    st = os.stat(os.path.join(vol, "plain"))
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1234, 5678, 0o640)
    assert os.path.isdir(os.path.join(vol, "d/d/d/d/d/d/d/d/d/d"))
    assert not os.path.exists("/etc/plain")


@needs_docker
def test_mount_flags_tmpfs_bind_and_volumes_from(daemon, tmp_path):
    (tmp_path / "host").mkdir()
    (tmp_path / "host" / "f").write_text("host file\n")
    p = docker(daemon, "run", "--rm", "--mount", f"type=bind,source={tmp_path}/host,"
               f"target=/h,readonly", "--mount", "type=tmpfs,target=/t,tmpfs-size=1m",
               "--mount", "type=volume,source=labelled,target=/v,volume-label=team=a",
               "busybox", "sh", "-c", "cat /h/f; df -k /t | tail -1; touch /h/x 2>&1; echo ok")
    assert p.stdout.startswith(b"host file\n") and b" 1024 " in p.stdout, p.stdout + p.stderr
    assert b"Read-only file system" in p.stdout
    assert json.loads(docker(daemon, "volume", "inspect", "labelled").stdout)[0]["Labels"] == \
        {"team": "a"}
    assert docker(daemon, "volume", "ls", "-q", "--filter", "label=team=a").stdout == \
        b"labelled\n"
    daemon.cli("run", "-d", "--name", "src", "-v", "shared:/s", "busybox", "sh", "-c",
               "echo from-src > /s/f; sleep 60")
    assert wait_for(lambda: docker(daemon, "run", "--rm", "--volumes-from", "src:ro",
                                      "busybox", "cat", "/s/f").stdout == b"from-src\n")
    p = docker(daemon, "run", "--rm", "--volumes-from", "src:ro", "busybox", "touch", "/s/x")
    assert b"Read-only file system" in p.stderr
    mounts = json.loads(docker(daemon, "inspect", "src").stdout)[0]["Mounts"]
    assert [(m["Type"], m["Name"], m["Destination"], m["Driver"]) for m in mounts] == \
        [("volume", "shared", "/s", "local")]


def test_volume_api_refuses_what_it_cannot_do_in_one_line(daemon):
    api = daemon.client().api
    import docker as docker_py
    for body, text in (({"Name": "../x"}, "invalid characters"),
                       ({"Name": "ok", "Driver": "nfs"}, "plugin"),
                       ({"Name": "ok", "DriverOpts": {"type": "nfs"}}, "takes no options"),
                       ({"Name": 7}, "Name")):
        with pytest.raises(docker_py.errors.APIError) as e:
            api._result(api._post_json(api._url("/volumes/create"), data=body), True)
        assert e.value.status_code == 400 and text in e.value.explanation
        assert "\n" not in e.value.explanation
    for mount, text in (({"Type": "bind", "Source": "rel", "Target": "/x"}, "absolute"),
                        ({"Type": "volume", "Source": "v", "Target": "/x",
                          "BindOptions": {"Propagation": "shared"}}, "propagation"),
                        ({"Type": "nfs", "Target": "/x"}, "type must be"),
                        ({"Type": "volume", "Source": "../v", "Target": "/x"}, "invalid"),
                        ({"Type": "volume", "Source": "v", "Target": "/"}, "absolute")):
        with pytest.raises(docker_py.errors.APIError) as e:
            api.create_container("busybox", "true", host_config={"Mounts": [mount]})
        assert e.value.status_code == 400 and text in e.value.explanation, mount
    assert volumes(daemon.cli) == [] and daemon.cli("ps", "-aq").stdout == ""
    with pytest.raises(docker_py.errors.NotFound):
        api.inspect_volume("nope")


def test_docker_py_volumes_and_prune(daemon):
    client = daemon.client()
    v = client.volumes.create("pyvol", labels={"k": "v"})
    assert v.name == "pyvol" and client.volumes.get("pyvol").attrs["Labels"] == {"k": "v"}
    assert [x.name for x in client.volumes.list()] == ["pyvol"]
    client.containers.run("busybox", ["sh", "-c", "echo x > /p/f"], remove=True,
                          volumes={"pyvol": {"bind": "/p", "mode": "rw"}})
    client.containers.run("busybox", ["true"], volumes=["/anon"])    # kept: not --rm
    for c in client.containers.list(all=True):
        c.remove()
    pruned = client.volumes.prune()                    # anonymous ones only (API ≥ 1.42)
    assert len(pruned["VolumesDeleted"]) == 1 and pruned["VolumesDeleted"][0] != "pyvol"
    assert client.api.prune_volumes(filters={"all": True})["VolumesDeleted"] == ["pyvol"]
    assert client.volumes.list() == []


def test_foreground_runs_make_and_clean_up_volumes_too(loaded, tmp_path):
    assert loaded.run("--rm", "-v", "fg:/d", "busybox", "sh", "-c", "echo 1 > /d/f").returncode == 0
    assert loaded.run("--rm", "-v", "fg:/d", "-v", "/anon", "busybox", "cat",
                      "/d/f").stdout == "1\n"
    assert volumes(loaded) == ["fg"]                     # the anonymous one went with --rm
    p = loaded.run("-v", "/anon2", "busybox", "/no/such/command")
    assert p.returncode == 127 and volumes(loaded) == ["fg"]   # a failed start leaves none
    p = loaded.run("-v", "/anon3", "-v", "x:/anon3", "busybox", "true")
    assert p.returncode != 0 and "Duplicate mount point: /anon3" in p.stderr
    assert volumes(loaded) == ["fg"]
    loaded("volume", "rm", "fg")
