"""``minirun-runc``: runc's command line (containerd's shim, conmon and dockerd call it so).

    minirun-runc [--root DIR] [--log FILE] [--log-format text|json] [--debug] COMMAND …

A hand-written parser rather than click or argparse: the engines run one process
per command, and each pays for its imports (this whole path imports no click, no
sqlite, no image store). Flags come before the container id, as with runc; each may
be written ``--flag value``, ``--flag=value`` or ``-flag``. Errors go to the --log
file (one JSON object per line with --log-format json: containerd reads the last
one) or, without --log, to stderr; the exit code is 1, as runc's.
"""
import _signal as signal   # signal.py's C core, without its enums (docs/architecture.md)
import os
import sys
import time

from .. import cjson
from ..errors import MinirunError
from . import state as st

VERSION = "0.1.0"
SPEC_VERSION = st.OCI_VERSION

# command → {flag: (short, kind)}; kind: bool, str, int, or list (repeatable)
COMMON = {"help": ("h", bool)}
COMMANDS = {
    "create": {"bundle": ("b", str), "console-socket": (None, str), "pid-file": (None, str),
               "no-pivot": (None, bool), "no-new-keyring": (None, bool),
               "preserve-fds": (None, int)},
    "run": {"bundle": ("b", str), "console-socket": (None, str), "pid-file": (None, str),
            "no-pivot": (None, bool), "no-new-keyring": (None, bool),
            "preserve-fds": (None, int), "detach": ("d", bool), "keep": (None, bool)},
    "start": {}, "state": {}, "pause": {}, "resume": {},
    "kill": {"all": ("a", bool)},
    "delete": {"force": ("f", bool)},
    "exec": {"process": ("p", str), "detach": ("d", bool), "pid-file": (None, str),
             "console-socket": (None, str), "tty": ("t", bool), "cwd": (None, str),
             "env": ("e", list), "user": ("u", str), "additional-gids": ("g", list),
             "cap": ("c", list), "no-new-privs": (None, bool), "preserve-fds": (None, int),
             "process-label": (None, str), "apparmor": (None, str), "ignore-paused": (None, bool)},
    "ps": {"format": ("f", str)},
    "list": {"format": ("f", str), "quiet": ("q", bool)},
    "events": {"stats": (None, bool), "interval": (None, str)},
    "update": {"resources": ("r", str), "memory": (None, str), "memory-reservation": (None, str),
               "memory-swap": (None, str), "cpu-shares": (None, int), "cpu-quota": (None, int),
               "cpu-period": (None, int), "cpuset-cpus": (None, str),
               "cpuset-mems": (None, str), "pids-limit": (None, int)},
    "features": {},
    "spec": {"bundle": ("b", str), "rootless": (None, bool)},
}
GLOBAL = {"root": (None, str), "log": (None, str), "log-format": (None, str),
          "debug": (None, bool), "systemd-cgroup": (None, bool), "rootless": (None, str),
          "criu": (None, str), "version": ("v", bool), "help": ("h", bool)}
# What each command takes after its flags: (required positional names, takes the rest)
POSITIONAL = {"create": (["id"], False), "run": (["id"], False), "start": (["id"], False),
              "state": (["id"], False), "pause": (["id"], False), "resume": (["id"], False),
              "kill": (["id"], True), "delete": (["id"], False), "exec": (["id"], True),
              "ps": (["id"], True), "list": ([], False), "events": (["id"], False),
              "update": (["id"], False), "features": ([], False), "spec": ([], False)}


class Usage(MinirunError):
    pass


def parse_flags(args, table):
    """(flags, the rest): flags up to the first argument that is not one."""
    flags, i = {}, 0
    shorts = {short: name for name, (short, _) in table.items() if short}
    while i < len(args):
        a = args[i]
        if a == "--":
            i += 1
            break
        if not a.startswith("-") or a == "-":
            break
        name, eq, value = a.lstrip("-").partition("=")
        name = shorts.get(name, name)
        if name not in table:
            raise Usage(f"flag provided but not defined: {a.split('=')[0]}")
        kind = table[name][1]
        if kind is bool:
            flags[name] = value.lower() not in ("false", "0") if eq else True
        else:
            if not eq:
                i += 1
                if i >= len(args):
                    raise Usage(f"flag needs an argument: {a}")
                value = args[i]
            if kind is int:
                try:
                    value = int(value)
                except ValueError:
                    raise Usage(f"invalid value {value!r} for flag {a}") from None
            if kind is list:
                flags.setdefault(name, []).append(value)
            else:
                flags[name] = value
        i += 1
    return flags, args[i:]


class Log:
    """Where errors and warnings go: the --log file (text or JSON lines) or stderr."""

    def __init__(self, path, fmt, debug):
        self.path, self.json = path, fmt == "json"
        self.debug = debug

    def write(self, level, msg):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        line = cjson.dumps({"level": level, "msg": msg, "time": stamp}) if self.json else \
            f'time="{stamp}" level={level} msg={cjson.dumps(msg)}'
        if self.path:
            try:
                with open(self.path, "a") as f:
                    f.write(line + "\n")
                return
            except OSError:
                pass
        try:
            os.write(2, (line + "\n").encode())
        except OSError:
            pass

    def trace(self, what, why=""):
        if self.debug:
            self.write("debug", f"{what}  # {why}" if why else what)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    log = Log("", "text", False)
    try:
        g, rest = parse_flags(argv, GLOBAL)
        log = Log(g.get("log", ""), g.get("log-format", "text"), g.get("debug", False))
        if g.get("version"):
            print(f"minirun-runc version {VERSION}\nspec: {SPEC_VERSION}")
            return 0
        if not rest or g.get("help"):
            print(__doc__.strip().splitlines()[2].strip())
            print("commands: " + " ".join(COMMANDS))
            return 0 if g.get("help") or not rest else 1
        if g.get("systemd-cgroup"):
            raise Usage("--systemd-cgroup is not supported: minirun-runc drives cgroupfs "
                        "directly (configure the engine's cgroup manager as cgroupfs)")
        command, rest = rest[0], rest[1:]
        if command not in COMMANDS:
            raise Usage(f"No help topic for '{command}'")
        flags, args = parse_flags(rest, {**COMMANDS[command], **COMMON})
        names, more = POSITIONAL[command]
        if flags.get("help"):
            print(f"usage: minirun-runc {command} "
                  + " ".join(f"[--{f}]" for f in COMMANDS[command]) + " " + " ".join(names))
            return 0
        if len(args) < len(names) or (len(args) > len(names) and not more):
            raise Usage(f'"{command}" requires exactly {len(names)} argument(s)'
                        if not more else f'"{command}" requires an argument')
        root = os.path.abspath(g.get("root") or st.DEFAULT_ROOT)
        from . import commands
        return commands.command(command)(root, flags, args, log)
    except MinirunError as e:
        log.write("error", str(e))
        return 1
    except KeyboardInterrupt:
        return 130


def entry():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    code = main()
    sys.stdout.flush()
    # Every file is closed by now; the interpreter's own shutdown (module teardown, ~5 ms)
    # is skipped, as an engine waits for each command to exit.
    os._exit(code)
