"""Healthchecks and events through minirund: the docker CLI, docker-py and minirun's CLI."""
import json
import threading
import time

import pytest
from conftest import SLACK, wait_for
from test_attach import docker, needs_docker

from minirun.engine.events import MAX_BYTES, EventLog
from minirun.image.layout import LayerBuilder, write_layout

pytestmark = pytest.mark.root


def health(daemon, name):
    return json.loads(daemon.cli("inspect", name).stdout)[0]["State"].get("Health")


def test_a_healthcheck_goes_starting_healthy_unhealthy(daemon):
    # The start period keeps it "starting" until the first check passes (failures before do
    # not count), however slow the machine is to ask (a VM under TCG took over 0.4 s).
    daemon.cli("run", "-d", "--name", "hc", "--health-cmd", "test -f /tmp/ok && echo checked",
               "--health-interval", "200ms", "--health-retries", "2",
               "--health-start-period", "600s", "busybox", "sh", "-c",
               f"sleep {SLACK:g}; touch /tmp/ok; sleep 600")
    assert health(daemon, "hc")["Status"] == "starting"
    assert "(health: starting)" in daemon.cli("ps").stdout
    assert wait_for(lambda: health(daemon, "hc")["Status"] == "healthy")
    assert "(healthy)" in daemon.cli("ps").stdout
    log = health(daemon, "hc")["Log"]
    assert 1 <= len(log) <= 5 and log[-1]["ExitCode"] == 0 and log[-1]["Output"] == "checked\n"
    api = daemon.client().api
    assert [c["Names"] for c in api.containers(filters={"health": "healthy"})] == [["/hc"]]
    daemon.cli("exec", "hc", "rm", "/tmp/ok")
    assert wait_for(lambda: health(daemon, "hc")["Status"] == "unhealthy")
    assert health(daemon, "hc")["FailingStreak"] >= 2
    assert api.containers(filters={"health": "healthy"}) == []


def test_a_check_that_hangs_is_killed_at_its_timeout(daemon):
    daemon.cli("run", "-d", "--name", "slow", "--health-cmd", "sleep 60", "--health-timeout",
               "300ms", "--health-interval", "500ms", "--health-retries", "1", "busybox",
               "sleep", "600")
    assert wait_for(lambda: health(daemon, "slow")["Status"] == "unhealthy")
    last = health(daemon, "slow")["Log"][-1]
    assert last["ExitCode"] == -1 and "exceeded timeout" in last["Output"]
    out = daemon.cli("exec", "slow", "ps", "-o", "comm").stdout.split()
    assert out.count("sleep") <= 2                      # PID 1, and at most a check running


def test_an_images_healthcheck_and_no_healthcheck(daemon, tmp_path):
    out = str(tmp_path / "oci")
    import subprocess
    busybox = subprocess.run(["sh", "-c", "command -v busybox"], capture_output=True,
                             text=True).stdout.strip()
    layer = (LayerBuilder().dir("bin").file("bin/busybox", open(busybox, "rb").read(),
                                            mode=0o755).symlink("bin/sh", "busybox")
             .symlink("bin/true", "busybox").symlink("bin/sleep", "busybox"))
    write_layout(out, [layer.tar_bytes()], {"config": {
        "Cmd": ["sleep", "600"], "Healthcheck": {"Test": ["CMD", "true"],
                                                 "Interval": 200_000_000}}},
        "docker.io/library/checked:1")
    daemon.minirun("load", "-i", out)
    daemon.cli("run", "-d", "--name", "img", "checked:1")
    assert wait_for(lambda: health(daemon, "img")["Status"] == "healthy")
    daemon.cli("run", "-d", "--name", "none", "--no-healthcheck", "checked:1")
    assert health(daemon, "none") is None
    assert "(health" not in [l for l in daemon.cli("ps").stdout.splitlines() if "none" in l][0]


def test_bad_healthcheck_options_are_one_line_errors(daemon):
    for flags, text in ((["--health-interval", "soon"], "a duration like 30s"),
                        (["--health-timeout", "10us"], "less than 1ms"),
                        (["--no-healthcheck", "--health-cmd", "true"], "conflicts")):
        p = daemon.cli("run", "-d", *flags, "busybox", "true", check=False)
        assert p.returncode != 0 and text in p.stderr and len(p.stderr.splitlines()) == 1
    assert daemon.cli("ps", "-aq").stdout == ""


@needs_docker
def test_docker_events_since_until_and_filters(daemon):
    start = time.time()
    daemon.cli("network", "create", "evnet")
    cid = daemon.cli("run", "-d", "--name", "ev", "-l", "team=a", "-v", "evvol:/v",
                     "--network", "evnet", "busybox", "sh", "-c", "exit 3").stdout.strip()
    daemon.cli("wait", cid)
    daemon.cli("rm", cid)
    daemon.cli("volume", "rm", "evvol")
    daemon.cli("network", "rm", "evnet")
    until = time.time() + 0.5
    p = docker(daemon, "events", "--since", str(start), "--until", str(until), "--format",
               "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}")
    lines = p.stdout.decode().splitlines()
    for expected in ("network create evnet", "volume create ", "container create ev",
                     "volume mount ", "container start ev", "container die ev",
                     "container destroy ev", "volume destroy ", "network destroy evnet"):
        assert any(l.startswith(expected) for l in lines), (expected, lines)
    order = [l.split()[1] for l in lines if l.startswith("container")]
    assert order.index("create") < order.index("start") < order.index("die") \
        < order.index("destroy")
    p = docker(daemon, "events", "--since", str(start), "--until", str(until), "--filter",
               "event=die", "--filter", "label=team=a", "--format", "{{json .}}")
    [die] = [json.loads(l) for l in p.stdout.splitlines()]
    assert die["Actor"]["Attributes"]["exitCode"] == "3" and die["id"] == cid
    p = docker(daemon, "events", "--since", str(start), "--until", str(until), "--filter",
               "bogus=1")
    assert p.returncode != 0 and b"invalid filter" in p.stderr


def test_events_stream_live_and_outlive_a_daemon_restart(daemon):
    client = daemon.client()
    since = time.time()
    seen = []
    stream = client.events(decode=True, filters={"type": "container"})
    reader = threading.Thread(target=lambda: [seen.append(e) for e in stream], daemon=True)
    reader.start()
    time.sleep(0.3)
    cid = daemon.cli("run", "-d", "busybox", "true").stdout.strip()
    assert wait_for(lambda: any(e["Action"] == "die" and e["id"] == cid for e in seen))
    stream.close()
    reader.join(10)                  # no thread of this test's outlives it
    assert not reader.is_alive()
    daemon.stop()
    daemon.start()
    old = list(daemon.client().events(since=since, until=time.time(), decode=True))
    assert [e["Action"] for e in old if e["id"] == cid][:3] == ["create", "start", "die"]


def test_the_event_file_stays_bounded(tmp_path):
    log = EventLog(str(tmp_path))
    for i in range(MAX_BYTES // 150):
        log.emit("container", "start", f"{i:064x}", {"name": f"c{i}", "image": "busybox"})
    size = (tmp_path / "events.jsonl").stat().st_size
    assert MAX_BYTES // 4 < size <= MAX_BYTES
    last = log.past(None, None)[-1]
    assert last["Actor"]["Attributes"]["name"] == f"c{MAX_BYTES // 150 - 1}"


def test_minirun_events(daemon):
    since = str(time.time())
    cid = daemon.cli("run", "-d", "busybox", "true").stdout.strip()
    daemon.cli("wait", cid)
    out = daemon.cli("events", "--since", since, "--until", str(time.time() + 0.2),
                     "--filter", f"container={cid}").stdout.splitlines()
    assert [l.split()[2] for l in out] == ["create", "start", "die"]
    assert f"container create {cid} (image=busybox" in out[0]
    out = daemon.cli("events", "--since", since, "--until", str(time.time() + 0.2),
                     "--format", "json", "--filter", "event=die").stdout
    assert json.loads(out)["Actor"]["Attributes"]["exitCode"] == "0"
