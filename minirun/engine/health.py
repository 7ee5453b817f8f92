"""Healthchecks: a command run inside a container now and then, as Docker's HEALTHCHECK.

The image's Healthcheck (or the container's own, which wins field by field)
says what to run (``CMD``, ``CMD-SHELL``, or ``NONE``) and how often. One
thread keeps the schedule for every container of the daemon; each check is an
exec (engine/exec.py: the container's namespaces, cgroups and lock-down), run
in a short-lived thread so that a slow check holds no one else's, and killed
when it passes its timeout. The outcome becomes ``State.Health`` (status,
failing streak, the last five results), ``(healthy)`` in ``ps``, and a
``health_status`` event.

    starting ──success──▶ healthy ──retries failures in a row──▶ unhealthy
       (failures within the start period do not count)
"""
import heapq
import signal
import threading
import time

from ..errors import MinirunError
from .logs import timestamp
from .options import NS      # (the check itself is an option: options.merged_healthcheck)

KEEP = 5                     # results kept in State.Health.Log, as Docker
MAX_OUTPUT = 4096            # bytes of a check's output kept, as Docker


def command(check):
    test = check["Test"]
    return ["/bin/sh", "-c", test[1]] if test[0] == "CMD-SHELL" else list(test[1:])


class Monitor:
    """The schedule of every container's checks, and their results."""

    def __init__(self, engine):
        self.engine = engine
        self.lock = threading.Condition()
        self.queue = []                   # (due, serial, cid, run)
        self.states = {}                  # cid -> State.Health
        self.runs = {}                    # cid -> the run being watched (a restart is another)
        self.serial = 0
        self.thread = None

    def watch(self, cid, check):
        """A container with *check* started."""
        with self.lock:
            run = object()
            self.runs[cid] = (run, check, time.monotonic())
            self.states[cid] = {"Status": "starting", "FailingStreak": 0, "Log": []}
            self._schedule(cid, run, check["Interval"] / NS)
            if self.thread is None:
                self.thread = threading.Thread(target=self._loop, name="health", daemon=True)
                self.thread.start()

    def forget(self, cid, keep_state=True):
        """Its run ended (its last health stays in inspect, as Docker's), or it is gone."""
        with self.lock:
            self.runs.pop(cid, None)
            if not keep_state:
                self.states.pop(cid, None)

    def state(self, cid):
        with self.lock:
            state = self.states.get(cid)
            return None if state is None else {**state, "Log": list(state["Log"])}

    def _schedule(self, cid, run, delay):
        self.serial += 1
        heapq.heappush(self.queue, (time.monotonic() + delay, self.serial, cid, run))
        self.lock.notify()

    def _loop(self):
        with self.lock:
            while True:
                if not self.queue:
                    self.lock.wait()
                    continue
                due, _, cid, run = self.queue[0]
                left = due - time.monotonic()
                if left > 0:
                    self.lock.wait(left)
                    continue
                heapq.heappop(self.queue)
                current = self.runs.get(cid)
                if current is None or current[0] is not run:
                    continue                          # it stopped, or started again since
                threading.Thread(target=self._check, args=(cid, run, current[1], current[2]),
                                 name="health-check", daemon=True).start()

    def _check(self, cid, run, check, started):
        begin = time.time()
        try:
            code, output = self._exec(cid, check)
        except MinirunError as e:
            code, output = -1, str(e)
        end = time.time()
        with self.lock:
            current = self.runs.get(cid)
            if current is None or current[0] is not run:
                return
            state = self.states[cid]
            state["Log"] = (state["Log"] + [{"Start": timestamp(begin), "End": timestamp(end),
                                             "ExitCode": code, "Output": output}])[-KEEP:]
            before = state["Status"]
            if code == 0:
                state["Status"], state["FailingStreak"] = "healthy", 0
            elif time.monotonic() - started >= check["StartPeriod"] / NS \
                    or before != "starting":
                state["FailingStreak"] += 1
                if state["FailingStreak"] >= check["Retries"]:
                    state["Status"] = "unhealthy"
            self._schedule(cid, run, check["Interval"] / NS)
            now = state["Status"]
        if now != before:                             # as Docker: on a change only
            self.engine.emit_container("health_status: " + now, cid)

    def _exec(self, cid, check):
        """Run the check in the container; (exit code, its output, cut)."""
        from .exec import create_exec, start_exec, inspect_exec    # the daemon's exec
        engine = self.engine
        row = engine.get(cid)
        eid = create_exec(engine, row, command(check))
        engine.execs[eid]["_health"] = True
        output = start_exec(engine, eid, False, None)
        timeout = check["Timeout"] / NS
        fired = []
        timer = threading.Timer(timeout, lambda: fired.append(_kill(engine, eid)))
        timer.start()
        data = b""
        try:
            for _, chunk in output:
                if len(data) < MAX_OUTPUT:
                    data += chunk[:MAX_OUTPUT - len(data)]
        finally:
            output.close()
            timer.cancel()
        info = inspect_exec(engine, eid)
        engine.execs.pop(eid, None)
        if fired:
            return -1, f"Health check exceeded timeout ({timeout:g}s)"
        return info["ExitCode"], data.decode("utf-8", "replace")


def _kill(engine, eid):
    ex = engine.execs.get(eid)
    if ex and ex.get("_pidfd") is not None:
        try:
            signal.pidfd_send_signal(ex["_pidfd"], signal.SIGKILL)
        except OSError:
            pass
