"""What a container can do to the daemon through its output: flood it, never end a line, fill
the disk. Others' logs and exits stay current, the daemon's memory and the files bounded."""
import glob
import json
import os
import signal
import time

import pytest
from conftest import SLACK, wait_for

from minirun.engine.logs import MAX_LINE

pytestmark = pytest.mark.root


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(next(l for l in f if l.startswith("VmRSS:")).split()[1])


def log_files(daemon, name):
    cid = json.loads(daemon.cli("inspect", name).stdout)[0]["Id"]
    return glob.glob(os.path.join(daemon.minirun.root, "containers", cid, "json.log*"))


def test_a_flood_leaves_the_others_current_and_the_files_bounded(daemon):
    daemon.cli("run", "-d", "--name", "flood", "--log-opt", "max-size=1m", "--log-opt",
               "max-file=2", "busybox", "yes")
    time.sleep(1)
    daemon.cli("run", "-d", "--name", "quiet", "busybox", "sh", "-c",
               "i=0; while [ $i -lt 3000 ]; do echo line $i; i=$((i+1)); done; sleep 300")
    assert wait_for(lambda: "line 2999" in daemon.cli("logs", "--tail", "1", "quiet").stdout, 5)
    assert daemon.cli("logs", "quiet").stdout.count("\n") == 3000
    daemon.cli("run", "-d", "--name", "brief", "busybox", "sh", "-c", "exit 3")
    start = time.monotonic()
    assert daemon.cli("wait", "brief").stdout.strip() == "3"
    assert time.monotonic() - start < 3 * SLACK             # its exit was seen at once
    time.sleep(2)
    files = log_files(daemon, "flood")
    assert sorted(os.path.basename(f) for f in files) == ["json.log", "json.log.1"]
    assert all(os.path.getsize(f) <= (1 << 20) + 65536 * 8 for f in files)
    assert daemon.cli("logs", "--tail", "3", "flood").stdout == "y\ny\ny\n"
    assert rss_kb(daemon.proc.pid) < 150_000


def test_output_without_newlines_is_cut_into_16k_entries(daemon):
    daemon.cli("run", "-d", "--name", "zeros", "--log-opt", "max-size=2m", "busybox",
               "sh", "-c", "head -c 1000000 /dev/zero | tr '\\0' x; sleep 300")
    files = lambda: log_files(daemon, "zeros")
    assert wait_for(lambda: files() and os.path.getsize(files()[0]) > 900_000, 10)
    with open(files()[0]) as f:
        entries = [json.loads(line) for line in f]
    assert all(len(e["log"]) == MAX_LINE and not e["log"].endswith("\n") for e in entries)
    assert rss_kb(daemon.proc.pid) < 150_000


def test_output_while_no_minirund_reads_waits_in_its_pipe_and_is_all_logged(daemon):
    """A log FIFO holds the kernel's 64 KiB, as Docker's do: a container that writes more
    while minirund is down waits for the next one, and loses nothing."""
    daemon.cli("run", "-d", "--name", "talker", "busybox", "sh", "-c",
               "sleep 1; seq 1 40000; echo end")                 # 229 kB
    pid = json.loads(daemon.cli("inspect", "talker").stdout)[0]["State"]["Pid"]
    daemon.stop(signal.SIGKILL)
    time.sleep(3)
    assert os.path.exists(f"/proc/{pid}")            # waiting for room in the pipe
    daemon.start()
    assert daemon.cli("wait", "talker").stdout.strip() == "0"
    assert daemon.cli("logs", "talker").stdout.split() == \
        [str(i) for i in range(1, 40001)] + ["end"]


def test_tail_reads_across_rotated_files_from_the_end(daemon):
    daemon.cli("run", "-d", "--name", "many", "--log-opt", "max-size=100k", "--log-opt",
               "max-file=3", "busybox", "sh", "-c",
               "i=0; while [ $i -lt 20000 ]; do echo n$i; i=$((i+1)); done; sleep 300")
    assert wait_for(lambda: "n19999" in daemon.cli("logs", "--tail", "1", "many").stdout, 10)
    assert daemon.cli("logs", "--tail", "4", "many").stdout.split() == \
        ["n19996", "n19997", "n19998", "n19999"]
    assert len(log_files(daemon, "many")) == 3
    lines = daemon.cli("logs", "many").stdout.split()     # what the three files hold, in order
    assert lines[-1] == "n19999" and lines == [f"n{i}" for i in range(20000 - len(lines), 20000)]


def test_the_none_driver_keeps_nothing_and_bad_options_are_refused(daemon):
    daemon.cli("run", "-d", "--name", "silent", "--log-driver", "none", "busybox", "sh", "-c",
               "echo hidden; sleep 300")
    time.sleep(0.5)
    assert daemon.cli("logs", "silent").stdout == ""
    for flags in (["--log-driver", "syslog"], ["--log-opt", "max-size=lots"],
                  ["--log-opt", "colour=red"]):
        p = daemon.cli("run", "-d", *flags, "busybox", "true", check=False)
        assert p.returncode != 0 and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_a_tail_of_a_huge_log_costs_what_it_shows(daemon):
    """logs --tail 1 of a 287 MiB log read it all (1.2 GiB peak). A log that big can only be
    an old one (rotation caps new ones); it is read from its end."""
    daemon.cli("run", "-d", "--name", "old", "busybox", "sleep", "300")
    [path] = [f for f in log_files(daemon, "old") if f.endswith("json.log")]
    line = json.dumps({"log": "x" * 200 + "\n", "stream": "stdout",
                       "time": "2026-01-01T00:00:00.000000000Z"}) + "\n"
    with open(path, "w") as f:
        for _ in range(4):
            f.write(line * 250_000)                        # ~240 MB
        f.write(json.dumps({"log": "the end\n", "stream": "stdout",
                            "time": "2026-01-01T00:00:01.000000000Z"}) + "\n")
    before = rss_kb(daemon.proc.pid)
    assert daemon.cli("logs", "--tail", "1", "old").stdout == "the end\n"
    assert rss_kb(daemon.proc.pid) - before < 50_000


def test_following_a_log_sends_each_line_once(tmp_path):
    """logs -f reads what is there, then follows: lines written between the two steps came
    twice (docker-py's run() follows a container's log from its start, and got its one line
    twice in a loaded CI run)."""
    from minirun.engine import logs
    path = str(tmp_path / "json.log")
    log = logs.LogFile(path, 1 << 20, 2)
    out = logs.LineWriter(log, "stdout")
    texts = lambda entries: [text for _, text, _ in entries]
    for before in (0, 1):                              # the file absent, then with a line
        for _ in range(before):
            out.feed(b"first\n")
        follower = logs.Follower(path)
        out.feed(b"meanwhile\n")                       # after the follower, before the read
        for tail in (None, 5):
            got = texts(logs.read(path, tail=tail, follower=follower))
            assert got == ["first\n"] * before, (before, tail)
        assert texts(follower.poll()) == ["meanwhile\n"]
        log.close()
        os.unlink(path)
        log = logs.LogFile(path, 1 << 20, 2)
        out = logs.LineWriter(log, "stdout")


def test_rotation_never_leaves_a_name_missing(tmp_path):
    """`logs` lists a container's log files at any moment: were json.log (or json.log.1)
    missing for an instant while the file rotates, a reader then would miss the newest lines
    (and a flood rotates many times a second)."""
    import threading
    from minirun.engine.logs import LogFile
    log = LogFile(str(tmp_path / "json.log"), 1000, 3)
    seen, done = set(), threading.Event()

    def watch():
        while not done.is_set():
            seen.add(tuple(sorted(n for n in os.listdir(tmp_path) if n.startswith("json.log"))))
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(2000):
            log.write(b"x" * 99 + b"\n")
    finally:
        done.set()
        watcher.join()
        log.close()
    grown = [("json.log",), ("json.log", "json.log.1"), ("json.log", "json.log.1", "json.log.2")]
    assert seen <= set(grown) and grown[-1] in seen           # names only ever added
    assert sorted(os.listdir(tmp_path)) == list(grown[-1])    # no temporary name left


def test_a_rotation_that_cannot_make_its_new_file_loses_lines_but_repeats_none(tmp_path):
    """No inode for the new json.log (here: its name taken by a directory): the lines at hand
    are lost, as Docker's json-file loses what it cannot write, and nothing moves. Before,
    json.log was already linked as json.log.1, so every line after came twice, and the
    writer's descriptor was left closed (in minirund, a number the next open reuses)."""
    from minirun.engine import logs
    path = str(tmp_path / "json.log")
    log = logs.LogFile(path, 100, 3)
    blocker = tmp_path / ".json.log.new"
    line = lambda n: b"line %03d " % n + b"x" * 30 + b"\n"      # 40 bytes: two fit a file
    log.write(line(0) + line(1))
    blocker.mkdir()
    with pytest.raises(OSError):
        log.write(line(2))
    assert sorted(os.listdir(tmp_path)) == [".json.log.new", "json.log"]
    blocker.rmdir()
    for n in range(3, 7):
        log.write(line(n))
    log.close()
    got = b"".join(open(f, "rb").read() for f in logs.files(path, 3) if os.path.exists(f))
    assert got == b"".join(line(n) for n in (0, 1, 3, 4, 5, 6))   # 2 lost, none twice
    assert sorted(os.listdir(tmp_path)) == ["json.log", "json.log.1", "json.log.2"]
