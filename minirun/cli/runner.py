"""What ``minirun run`` does once its flags are parsed (shared by click and the fast path).

No click here: the fast path imports this module.
"""
import os
import sys

from .. import cjson, config
from ..engine.options import RunOptions
from ..errors import (EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, EXIT_RUNTIME, MinirunError,
                      UsageError)


def run_any(root, host, options):
    """Foreground in this process, or ``-d`` through minirund; returns the exit code."""
    opts = _options(options)
    if not opts.detach and not host:
        from ..engine.run import run_foreground     # -d never loads the runtime
        return run_foreground(root, opts)
    if not opts.detach:                              # through minirund, as the docker CLI
        if opts.trace:
            raise UsageError("--trace shows a run in this process: drop -H "
                             f"({config.HOST_ENV}) to trace it")
        opts.stdin_once = opts.interactive           # stdin ends with ours, as docker run -i
        if opts.tty and os.isatty(1):
            size = os.get_terminal_size(1)
            opts.console_size = [size.lines, size.columns]
    try:
        client, cid = _create(host, opts)
        if not opts.detach:
            from .attaching import attach           # on use: the fast path needs none of it
            return attach(client, cid, opts.tty, opts.interactive, opts.detach_keys,
                          start=True)
        client.call("POST", f"/containers/{cid}/start")
    except MinirunError as e:
        e.exit_code = _run_failed(str(e))
        raise
    print(cid)
    return 0


def _run_failed(message):
    """The exit code of a run that minirund would not create or start, as the docker CLI
    gives it: the API's error carries only a message, so the code is read from its words
    (runc's and minirun's, in Go's lower case)."""
    if any(w in message for w in ("executable file not found", "no such file or directory")):
        return EXIT_NOT_FOUND
    if any(w in message for w in ("permission denied", "is a directory")):
        return EXIT_NOT_EXECUTABLE
    return EXIT_RUNTIME


def create_any(host, options):
    """``minirun create``: the container made through minirund (pulled first if missing),
    not started; its ID printed."""
    _, cid = _create(host, _options(options))
    print(cid)
    return 0


def _options(options):
    labels = options.pop("label", None) or []
    options["labels"] = dict(l.partition("=")[::2] for l in labels)
    return RunOptions(**options)


def _create(host, opts):
    from ..api.convert import create_body           # a foreground run never loads the
    from .client import Client, DaemonError         # HTTP client
    client = Client(host)
    try:
        cid = client.call("POST", "/containers/create", create_body(opts), name=opts.name)["Id"]
    except DaemonError as e:
        if e.status != 404 or "No such image" not in str(e):
            raise
        print(f"Unable to find image '{opts.image}' locally", file=sys.stderr, flush=True)
        daemon_pull(client, opts.image)
        cid = client.call("POST", "/containers/create", create_body(opts), name=opts.name)["Id"]
    return client, cid


def daemon_pull(client, image, out=sys.stderr):
    """POST /images/create, its JSON progress shown as lines (as docker run -d does)."""
    daemon_stream(client.request("POST", "/images/create", fromImage=image), out)


def daemon_stream(resp, out):
    """A pull's or push's JSON progress from minirund, one line per step on *out* (None:
    quiet); an error inside the stream ends it as an error."""
    for line in resp:
        msg = cjson.loads(line)
        if "error" in msg:
            raise MinirunError(msg["error"])
        if out is not None and msg.get("status") and not msg.get("progressDetail"):
            print(f"{msg['id']}: {msg['status']}" if msg.get("id") else msg["status"],
                  file=out, flush=True)
    resp.conn.close()
