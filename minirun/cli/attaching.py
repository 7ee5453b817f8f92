"""The client side of attaching (click-free: ``run`` through minirund uses it too).

As the docker CLI: attach first, then start (so no output is missed), then copy
both ways — our terminal in raw mode with -t — and end with the container's
exit code from a ``wait`` asked before the start (a ``--rm`` container may be
gone by the time its output ends). The detach keys are watched here as well as
in minirund: typing them ends the attach with "read escape sequence" and exit
code 1, the container left running, as Docker does.
"""
import json
import os
import socket
import sys
import threading

from ..engine.attach import DetachKeysError, DetachScanner, parse_detach_keys
from ..errors import UsageError
from .client import frames


def attach(client, cid, tty, stdin, keys=None, start=False):
    """Attach to container *cid* (and start it); return its exit code."""
    try:
        key_bytes = parse_detach_keys(keys)
    except DetachKeysError as e:
        raise UsageError(str(e)) from None
    resp = client.request("POST", f"/containers/{cid}/attach", stream=1, stdout=1, stderr=1,
                          stdin=int(stdin), detachKeys=keys)
    waiter = client.request("POST", f"/containers/{cid}/wait",
                            condition="next-exit" if start else "not-running")
    if start:
        client.call("POST", f"/containers/{cid}/start")
    if tty and os.isatty(1):
        size = os.get_terminal_size(1)
        client.call("POST", f"/containers/{cid}/resize", h=size.lines, w=size.columns)
    detached = threading.Event()
    if stdin:
        threading.Thread(target=send_stdin, args=(resp.sock, key_bytes, detached),
                         daemon=True).start()
    from ..runtime.attach import raw_terminal     # termios & co.: on use only
    with raw_terminal(0 if tty and stdin else None):
        try:
            copy_output(resp, tty)
        except OSError:
            pass                      # the connection ended under us: we detached
    resp.conn.close()
    if detached.is_set():
        waiter.conn.close()
        sys.stderr.write("read escape sequence\n")
        return 1
    code = json.loads(waiter.read() or b"{}").get("StatusCode", 0)
    waiter.conn.close()
    return code


def copy_output(resp, tty, fp=None):
    """A stream's bytes to our stdout and stderr: raw with a terminal, else demultiplexed."""
    out, err = sys.stdout.buffer, sys.stderr.buffer
    source = fp or resp
    if tty:
        while data := (source.read1(65536) if hasattr(source, "read1") else
                       source.read(65536)):
            out.write(data)
            out.flush()
        return
    for stream, data in frames(source):
        target = err if stream == 2 else out
        target.write(data)
        target.flush()


def send_stdin(sock, keys=b"", detached=None):
    """Copy our stdin to a hijacked connection; with *keys*, typing them detaches: the
    connection is shut down and *detached* set."""
    scanner = DetachScanner(keys)
    try:
        while data := os.read(0, 65536):
            out, typed = scanner.scan(data)
            sock.sendall(out)
            if typed:
                detached.set()
                sock.shutdown(socket.SHUT_RDWR)
                return
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
