"""Containers as the daemon manages them: create, start, stop, kill, wait, rm, restart.

minirund's one Engine holds the stores and the supervisor. Its containers
are forked by the fork server (forkserver.py), never by this multi-threaded
process; exits come back through the supervisor, are recorded, and restart
policies applied. On start it re-adopts containers that a previous minirund
left running, and records the exit codes of those that ended meanwhile.
"""
import os
import signal
import threading
import time

from .. import statedb
from ..errors import Conflict, MinirunError, NotModified
from ..fsutil import readable, tree_size
from ..image.store import ImageStore
from ..runtime import cgroups as cg
from ..runtime.trace import quiet
from . import create as creating
from .attach import Hub
from .events import EventLog
from .health import Monitor
from . import logs
from . import options as o
from .cleanup import reap_orphans
from .containers import ContainerStore, process_alive, process_identity, valid_name
from .forkserver import Client as ForkServer
from .networking import Networking
from .start import start as start_container
from .volumes import VolumeStore, remove_container
from .supervisor import (UNKNOWN_EXIT, Supervisor, container_ends, daemon_ends, make_fifos,
                         read_exit_file)

LAST_CODES = 4096      # exit codes kept for waiters that find their container removed
KILL_SETTLES = 10      # seconds a SIGKILLed PID 1 gets to be gone before kill answers


class Engine:
    def __init__(self, root, log, log_file=None, userns_remap=False):
        self.root = root
        self.log = log
        self.userns_default = "remap" if userns_remap else ""   # minirund --userns-remap
        db = statedb.LocalDB(root)
        self.images = ImageStore(root, db=db)
        self.containers = ContainerStore(root, db=db)
        self.networking = Networking(root, self.containers, db=db)
        self.volumes = VolumeStore(root, db=db)
        self.events = EventLog(root)
        self.health = Monitor(self)
        self.forkserver = ForkServer(root, log_file)
        self.supervisor = Supervisor(log, self.forkserver, self._on_exec_exit)
        self.cgroups = cg.detect()      # the host's cgroup layout does not change under us
        self.changed = threading.Condition()
        self.exits = {}                 # cid -> number of exits seen (for wait next-exit)
        self.last_codes = {}            # cid -> its last exit code
        self.stopped_by_user = set()    # no restart policy after an explicit stop or kill
        self.restarting = set()         # exited, a restart policy's start to come (back-off)
        self.policy_lock = threading.Lock()
        self.execs = {}
        self.hubs = {}                  # cid -> attach.Hub: its attached clients and stdin
        self.hubs_lock = threading.Lock()

    # -- daemon start and stop --------------------------------------------------
    def startup(self):
        self.supervisor.start()
        self.images.layers.clean_tmp()
        self.volumes.clean()
        reap_orphans(self.containers, self.networking)   # foreground runs whose minirun was killed
        for row in self.containers.list():
            try:
                self._recover(row)
            except Exception:
                self.log.exception("recovering container %s", row["id"][:12])
        for fd in self.supervisor.terminals.values():  # of containers not re-adopted
            os.close(fd)
        self.supervisor.terminals = {}

    def _recover(self, row):
        """After a restart: re-adopt what runs, finish what a crash left half-made."""
        cid = row["id"]
        config = self.containers.config(row)
        if self.containers.build_step(row):           # its build ended with the last minirund
            self.cgroups.kill_all(cid)
            self.cgroups.remove(cid)
            self.networking.disconnect(cid)
            remove_container(self.containers, cid, volumes=True)
            return
        if "spec" not in config:                      # create was cut short
            if not process_alive(row["owner"]):
                self.containers.remove(cid)
            return
        if config["spec"].get("die_with_parent", True):
            return                                    # a foreground run: its minirun watches it
        exit_file = self.containers.exit_file(cid)
        owned = self.supervisor.running.get(cid) == row["pid"]
        if row["state"] == "running" and (owned or self._alive(row)):
            try:
                pidfd = os.pidfd_open(row["pid"])
            except ProcessLookupError:                # it ended a moment ago: its exit file
                pidfd = None                          # says how (the fork server wrote it)
            if pidfd is not None:
                self.containers.update(cid, owner=process_identity())
                fifo = self.containers.path(cid, STDIN_FIFO)
                pty = self.supervisor.terminals.pop(cid, None)    # -t: the fork server's copy
                if _reads_stdin_fifo(config) and os.path.exists(fifo):
                    self.hub(cid).started(_open_stdin_fifo(fifo), False, None, True)
                elif pty is not None:
                    self.hub(cid).started(None, False, os.dup(pty),
                                          bool(config["spec"].get("stdin")))
                self.supervisor.watch(cid, row["pid"], self.containers.path(cid), exit_file,
                                      self._on_exit, self.log_file(row), self.hub(cid),
                                      owned=owned, pty=pty, pidfd=pidfd)
                self.log.info("re-adopted container %s (pid %s)", cid[:12], row["pid"])
                return
        self.cgroups.kill_all(cid)
        self.cgroups.remove(cid)
        self.networking.disconnect(cid)
        if row["state"] == "running":                 # it exited while no minirund watched
            code = read_exit_file(exit_file)
            code = UNKNOWN_EXIT if code is None else code
            self.containers.mark_exited(cid, code)
            self._after_exit(cid, code)

    def _alive(self, row):
        """Is the recorded PID 1 still running, in the container's own cgroup?"""
        if not row["pid"]:
            return False
        try:
            with open(self.cgroups.procs_file(row["id"])) as f:
                return str(row["pid"]) in f.read().split()
        except OSError:
            return False

    def shutdown(self):
        self.supervisor.stop()

    # -- lookups ------------------------------------------------------------------
    def get(self, ref):
        return self.containers.get(ref)

    def hub(self, cid):
        """The container's attach.Hub (made on first use; it outlives each run)."""
        with self.hubs_lock:
            hub = self.hubs.get(cid)
            if hub is None:
                hub = self.hubs[cid] = Hub()
            return hub

    def _notify(self):
        with self.changed:
            self.changed.notify_all()

    # -- create / start -----------------------------------------------------------
    def create(self, opts):
        cid, name, _, made = creating.create(self.images, self.containers, opts,
                                             self.networking, die_with_parent=False,
                                             userns_default=self.userns_default)
        for volume in made:
            self.emit("volume", "create", volume, {"driver": "local"})
        self.emit_container("create", cid)
        return cid, name

    # -- events -------------------------------------------------------------------------
    def emit(self, kind, action, actor, attributes=None):
        self.events.emit(kind, action, actor, attributes)

    def emit_container(self, action, cid, **more):
        """A container's event, with the attributes Docker gives it: name, image, labels."""
        try:
            row = self.get(cid)
        except MinirunError:
            return
        labels = self.containers.options(row).get("labels") or {}
        self.events.emit("container", action, row["id"],
                         {**labels, "image": row["image"], "name": row["name"], **more})

    def start(self, ref):
        """The user's start: a restart policy applies again afterwards."""
        cid = self.get(ref)["id"]
        with self.policy_lock:
            self.stopped_by_user.discard(cid)
            self._launch(cid)

    def _launch(self, cid):
        row = self.get(cid)
        if row["state"] == "running":
            raise NotModified("container already started")
        spec = self.containers.spec(row)
        directory = self.containers.path(cid)
        exit_file = self.containers.exit_file(cid)
        try:
            os.unlink(exit_file)                      # the last run's
        except FileNotFoundError:
            pass
        fifos = make_fifos(directory)
        ours = daemon_ends(fifos)
        options = self.containers.options(row)
        stdin, stdin_w = _stdin(spec, options, directory)
        theirs = container_ends(fifos)

        def spawn(spec, _trace, stdio):           # forked by the fork server, not by us
            return self.forkserver.start(spec, stdio, exit_file)
        hub = self.hub(cid)
        if options.get("console_size") and not hub.size:
            hub.size = tuple(options["console_size"])

        def size_terminal(proc):                  # before its command runs
            if proc.pty is not None:
                hub.size_terminal(proc.pty)
        try:
            _, proc = start_container(spec, quiet, self.networking, stdio=(stdin, *theirs),
                                      spawn=spawn, outside=size_terminal, cgroups=self.cgroups)
        except BaseException:
            for fd in (*ours, stdin_w):
                if fd is not None:
                    os.close(fd)
            raise
        finally:
            for fd in (stdin, *theirs):
                os.close(fd)            # the container holds its own copies
        try:
            self.containers.mark_running(cid, proc.pid)
            if proc.pty is not None:
                self._keep_terminal(cid, proc.pty)
            hub.started(stdin_w, bool(options.get("stdin_once")),
                        os.dup(proc.pty) if proc.pty is not None else None, spec.stdin)
            stdin_w = None
            self.supervisor.watch(cid, proc.pid, directory, exit_file, self._on_exit,
                                  self.log_file(row), hub, pty=proc.pty, ends=ours,
                                  pidfd=proc.pidfd)
            check = self.containers.config(row).get("health")
            if check:
                self.health.watch(cid, check)
        except BaseException:          # never a container that nobody watches
            hub.ended()
            if stdin_w is not None:
                os.close(stdin_w)
            self.cgroups.kill_all(cid)
            self.cgroups.remove(cid)
            self.networking.disconnect(cid)
            self.containers.mark_exited(cid, UNKNOWN_EXIT)
            raise
        self._notify()
        for m in spec.mounts:
            if m.volume:
                self.emit("volume", "mount", m.volume, {"container": cid,
                                                        "destination": m.target})
        self.emit_container("start", cid)

    def _keep_terminal(self, cid, pty):
        """The fork server holds a copy of a -t container's terminal: without one, a minirund
        that stops would hang it up (the kernel's SIGHUP would end the container)."""
        try:
            self.forkserver.keep(cid, pty)
        except Exception as e:                    # the container runs on without it
            self.log.warning("container %s: its terminal is not kept across a restart of "
                             "minirund: %s", cid[:12], e)

    def log_options(self, row):
        """(driver, max-size, max-file) of a container's log."""
        options = self.containers.options(row)
        return creating.log_options(options.get("log_driver"), options.get("log_opt") or [])

    def log_file(self, row):
        driver, size, files = self.log_options(row)
        if driver == "none":
            return logs.NoLog()
        return logs.LogFile(self.containers.path(row["id"], logs.LOG_NAME), size, files)

    # -- exits and restart policies -----------------------------------------------
    def _on_exec_exit(self, eid, code):
        """An exec'd process ended (*eid* None: every running one is lost with the fork
        server)."""
        with self.changed:
            for key, ex in self.execs.items():
                if (key == eid or eid is None) and ex["ExitCode"] is None:
                    ex.update(Running=False, ExitCode=code)
            self.changed.notify_all()

    def _on_exit(self, cid, code):
        self.health.forget(cid)
        try:
            for m in self.containers.spec(self.get(cid)).mounts:
                if m.volume:
                    self.emit("volume", "unmount", m.volume, {"container": cid})
        except MinirunError:
            pass
        oom = self.cgroups.oom_killed(cid)
        if oom:
            self.emit_container("oom", cid)
        self.emit_container("die", cid, exitCode=str(code))
        self.cgroups.kill_all(cid)        # stray processes of an --init-less PID 1 are gone too
        self.cgroups.remove(cid)
        self.networking.disconnect(cid, exited=True)
        self.containers.mark_exited(cid, code, oom)
        self._after_exit(cid, code)

    def _after_exit(self, cid, code):
        with self.changed:
            self.exits[cid] = self.exits.get(cid, 0) + 1
            self.last_codes.pop(cid, None)
            self.last_codes[cid] = code       # for a wait that finds it removed (--rm)
            if len(self.last_codes) > LAST_CODES:
                del self.last_codes[next(iter(self.last_codes))]     # the oldest
            self.changed.notify_all()
        try:
            row = self.get(cid)
        except MinirunError:
            return
        options = self.containers.options(row)
        policy, retries = o.parse_restart(options.get("restart"))
        user_stopped = cid in self.stopped_by_user
        again = not user_stopped and (
            policy in ("always", "unless-stopped")
            or (policy == "on-failure" and code != 0
                and (not retries or row["restart_count"] < retries)))
        if again:
            delay = min(0.1 * 2 ** row["restart_count"], 10)   # Docker's growing back-off
            self.containers.update(cid, restart_count=row["restart_count"] + 1)
            self.restarting.add(cid)
            threading.Timer(delay, self._restart_after_exit, (cid,)).start()
        elif options.get("rm"):
            self._forget(cid, volumes=True)
            self._notify()

    def _restart_after_exit(self, cid):
        try:
            with self.policy_lock:            # a stop between check and launch wins
                if cid not in self.stopped_by_user:
                    self._launch(cid)
        except MinirunError:
            pass
        except Exception:
            self.log.exception("restarting %s", cid[:12])
        finally:
            self.restarting.discard(cid)

    # -- signals, stop, kill, restart ---------------------------------------------
    def _signal(self, row, sig, settle=0):
        """Signal PID 1; True if it is gone within *settle* seconds."""
        try:
            fd = os.pidfd_open(row["pid"])
        except ProcessLookupError:
            return True
        try:
            signal.pidfd_send_signal(fd, sig)
            return readable(fd, settle)
        except ProcessLookupError:
            return True
        finally:
            os.close(fd)

    def kill(self, ref, sig=signal.SIGKILL):
        """As dockerd: when PID 1 is gone after the signal (at once, or within a few seconds
        for SIGKILL) its exit is recorded before kill answers, so inspect, wait and rm that
        follow see it exited."""
        cid = self.get(ref)["id"]
        with self.policy_lock:
            self.stopped_by_user.add(cid)
            row = self.get(cid)
        if row["state"] != "running":
            raise Conflict(f"Container {cid} is not running")
        self.emit_container("kill", cid, signal=str(int(sig)))
        if self._signal(row, sig, KILL_SETTLES if sig == signal.SIGKILL else 0):
            self._wait_state(cid, "running", KILL_SETTLES)

    def stop(self, ref, timeout=10, sig=signal.SIGTERM):
        cid = self.get(ref)["id"]
        with self.policy_lock:
            self.stopped_by_user.add(cid)    # also ends a restart policy's waiting retry
            row = self.get(cid)
        if row["state"] != "running":
            raise NotModified("container already stopped")
        if row["paused"]:
            self.unpause(cid)
        self.emit_container("kill", cid, signal=str(int(sig)))
        self._signal(row, sig)
        if not self._wait_state(cid, "running", timeout):
            self.emit_container("kill", cid, signal=str(int(signal.SIGKILL)))
            self.cgroups.kill_all(cid)         # SIGKILL to every process in its cgroup
            self._wait_state(cid, "running", 10)
        self.emit_container("stop", cid)

    def restart(self, ref, timeout=10):
        row = self.get(ref)
        if row["state"] == "running":
            self.stop(row["id"], timeout)
        self.start(row["id"])

    def _wait_state(self, cid, leave, timeout):
        """Wait until the container's state is no longer *leave*; False on timeout."""
        end = time.monotonic() + timeout
        with self.changed:
            while True:
                try:
                    if self.get(cid)["state"] != leave:
                        return True
                except MinirunError:
                    return True
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(min(left, 0.5))

    # -- wait, remove, rename, pause ----------------------------------------------
    def wait(self, ref, condition="not-running", gone=lambda: False):
        """Block as Docker's /wait does; return the exit code (None if *gone()*: the one
        waiting went away)."""
        row = self.get(ref)
        cid = row["id"]
        if condition not in ("not-running", "next-exit", "removed"):
            raise o.OptionError(f"invalid condition: {condition}")
        seen = self.exits.get(cid, 0)
        with self.changed:
            while True:
                try:
                    row = self.get(cid)
                except MinirunError:                    # removed (--rm): how it ended
                    return self.last_codes.get(cid, row["exit_code"] or 0)
                if condition == "not-running" and row["state"] != "running":
                    return row["exit_code"] or 0
                if condition == "next-exit" and self.exits.get(cid, 0) > seen:
                    return row["exit_code"] or 0
                if gone():
                    return None
                self.changed.wait(0.5)

    def remove(self, ref, force=False, volumes=False):
        row = self.get(ref)
        cid = row["id"]
        if cid in self.restarting:
            if not force:
                raise Conflict(f"You cannot remove a restarting container {cid}. Stop the "
                               f"container before attempting removal or force remove")
            with self.policy_lock:
                self.stopped_by_user.add(cid)           # its restart is not launched
        if row["state"] == "running":
            if not force:
                raise Conflict(f"You cannot remove a running container {cid}. Stop the "
                               f"container before attempting removal or force remove")
            with self.policy_lock:
                self.stopped_by_user.add(cid)
            self.cgroups.kill_all(cid)
            if not self._wait_state(cid, "running", 10):
                # Its exit not heard yet (a supervisor busy with a flood of output, on a slow
                # machine): its processes are dead, so its cgroups go now, not when — or
                # whether — that exit is heard before the daemon stops.
                self.cgroups.remove(cid)
        self.networking.disconnect(cid)
        self._forget(cid, volumes)
        self._notify()

    def _forget(self, cid, volumes=False):
        """A stopped container's record and what the daemon keeps of it go (with *volumes*,
        its anonymous volumes too)."""
        self.emit_container("destroy", cid)
        self.health.forget(cid, keep_state=False)
        gone = self.volumes.anonymous_of(cid) if volumes else []
        remove_container(self.containers, cid, volumes)
        for name in gone:
            if name not in {r["name"] for r in self.volumes.list()}:
                self.emit("volume", "destroy", name, {"driver": "local"})
        self.exits.pop(cid, None)
        with self.hubs_lock:
            self.hubs.pop(cid, None)

    def rename(self, ref, name):
        if not valid_name(name):
            raise o.OptionError(f"Invalid container name ({name})")
        row = self.get(ref)
        try:
            self.containers.update(row["id"], name=name.lstrip("/"))
        except statedb.IntegrityError:
            raise Conflict(f'Conflict. The container name "/{name.lstrip("/")}" is already in '
                           f'use') from None
        self.emit_container("rename", row["id"], oldName="/" + row["name"])

    def pause(self, ref, frozen=True):
        row = self.get(ref)
        if row["state"] != "running":
            raise Conflict(f"Container {row['id']} is not running")
        self.cgroups.freeze(row["id"], frozen)
        self.containers.update(row["id"], paused=int(frozen))
        self.emit_container("pause" if frozen else "unpause", row["id"])

    def unpause(self, ref):
        self.pause(ref, frozen=False)

    def update(self, ref, options, limits):
        """``docker update``: *options* (the run options changed) and *limits* (a Limits of
        the resources changed) recorded, and applied at once to a running container."""
        row = self.get(ref)
        config = self.containers.config(row)
        spec = self.containers.spec(row)
        for key, value in limits.as_dict().items():
            if value not in (None, [], False):
                setattr(spec.limits, key, value)
        if row["state"] == "running":
            self.cgroups.update(row["id"], limits)
        self.containers.save_spec(row["id"], spec, options={**config["options"], **options})
        self.emit_container("update", row["id"])

    def prune(self):
        deleted, space = [], 0
        for row in self.containers.list():
            if row["state"] != "running":
                space += tree_size(self.containers.path(row["id"], "upper"))
                self._forget(row["id"])
                deleted.append(row["id"])
        self._notify()
        return deleted, space


STDIN_FIFO = "stdin.fifo"


def _reads_stdin_fifo(config):
    """Does a container (its record's config) read stdin from its FIFO?"""
    spec, options = config["spec"], config.get("options") or {}
    return spec.get("stdin") and not spec.get("tty") and not options.get("stdin_once")


def _stdin(spec, options, directory):
    """(the container's stdin, minirund's write end or None) for a run.

    With -i the daemon keeps a write end (attach.py). Without StdinOnce stdin never ends, so
    it is a FIFO the container holds read-write: no restart of minirund can close it under
    the container (``docker run -di busybox cat`` lives on), and the next minirund opens it
    again. With StdinOnce the first attached client's input ending must end it: a pipe whose
    only write end is minirund's. With -t the terminal is stdin."""
    if not spec.stdin or spec.tty:
        return os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC), None
    if options.get("stdin_once"):
        return os.pipe2(os.O_CLOEXEC)
    path = os.path.join(directory, STDIN_FIFO)
    if not os.path.exists(path):
        os.mkfifo(path, 0o600)
    return _open_stdin_fifo(path), _open_stdin_fifo(path)


def _open_stdin_fifo(path):
    """Read-write: opening never blocks, and the container's end never sees the end."""
    return os.open(path, os.O_RDWR | os.O_CLOEXEC)

