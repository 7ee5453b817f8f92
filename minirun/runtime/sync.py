"""The handshake between a starting process and the one that started it, declared once.

Both halves run over a SOCK_SEQPACKET socket pair; the child's end is
close-on-exec, so a successful execve shows up in the parent as end of file. A
container's PID 1 says EXEC just before it: its start is done then.
(runc's libcontainer/sync.go draws the same kind of exchange.)

``run`` — a container's PID 1::

    parent                                  child (PID 1 of a new PID namespace)
      │ make its cgroups (v2: move it in)   │ namespaces (but cgroup's), root file system
      ├── GO + v1's tasks files ───────────▶│ (both at once)
      │                                     │ write 0 to each: it joins by itself (v1)
      │                                     │ the cgroup namespace (rooted in its cgroup)
      │◀─────────────────────── PTY + fd ───┤ (-t only: the terminal's master side)
      │◀─────────────────────────── READY ──┤
      │ wire what lives outside (network)   │
      ├── CONTINUE ────────────────────────▶│
      │                                     │ (--userns: unshare(CLONE_NEWUSER))
      │◀────────────────────────── USERNS ──┤
      │ write its uid_map and gid_map       │
      ├── MAPPED ──────────────────────────▶│
      │                                     │ lock down, find the command
      │◀──────────────────────────── EXEC ──┤ or ERROR {message, code}, then exit
      │ started                             │ execve; if even that fails, the message
                                            │ goes to its stderr, and it exits

A PID 1 that minirund's fork server forked ahead (engine/forkserver.py) first
waits for its spec; the fork server then hands the socket on to minirund::

    fork server                             child (PID 1 of a new PID namespace)
      │                                     │ UTS, IPC and network namespaces, lo up
      ├── SPEC {spec} + its stdio ─────────▶│ (then as above, from its other namespaces)

``exec`` — a process joining a running container (runtime/join.py)::

      │                                     │ cgroups, setns into each namespace
      │◀─────────────────────── PTY + fd ───┤ (-t only)
      │                                     │ lock down, execve
      │◀────────── end of file (exec'd) ────┤ or ERROR {message, code}, then exit
"""
import _socket as socket   # socket.py's C core, without its enums (docs/architecture.md)
import os
import struct

from .. import cjson

GO = "go"                # parent → child: the cgroups are made, go on (to READY); on v1
                         # with one fd per tasks file to join by, on v2 once it is moved in
PTY = "pty"              # child → parent, with one fd: the master side of the terminal
READY = "ready"          # child → parent: namespaces and root file system are made
CONTINUE = "continue"    # parent → child: the outside (network) is ready, lock down and exec
ERROR = "error"          # child → parent: {"message", "code"}; the child then exits with code
EXEC = "exec"            # child → parent: its command is found, the execve comes next; the
                         # start is done (as runc's: the execve tears down the child's copy
                         # of a Python process, ~0.7 ms nobody need wait for)
USERNS = "userns"        # child → parent: I am in a new user namespace, map it
MAPPED = "mapped"        # parent → child: its uid_map and gid_map are written
SPEC = "spec"            # fork server → a child forked ahead, with its three stdio fds:
                         # {spec} (runtime/spec.py's spec_to_dict)
MESSAGE_SIZE = 65536     # bytes any other message may take (the largest: an ERROR's traceback)
SPEC_SIZE = 1 << 18      # bytes a SPEC may take: what the fork server takes of minirund's START
MAX_FDS = 16             # descriptors one message carries at most (GO: a tasks file for each
                         # v1 hierarchy minirun uses, ten at most; PTY: one)
FD_SIZE = struct.calcsize("i")   # packed with struct: array loads collections (architecture.md)


def send_fds(sock, data, fds):
    """One message, *data*, carrying descriptors *fds*: socket.send_fds, as it does it."""
    sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                           struct.pack(f"{len(fds)}i", *fds))])


def recv_fds(sock, size, max_fds=MAX_FDS):
    """(data, descriptors) of one message: socket.recv_fds, as it does it."""
    data, ancillary, _, _ = sock.recvmsg(size, socket.CMSG_LEN(max_fds * FD_SIZE))
    fds = []
    for level, kind, cmsg in ancillary:
        if (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS):
            n = len(cmsg) // FD_SIZE
            fds += struct.unpack(f"{n}i", cmsg[:n * FD_SIZE])
    return data, fds


def send(sock, kind, fds=(), **payload):
    data = cjson.dumps({"type": kind, **payload}).encode()
    if fds:
        send_fds(sock, data, fds)
    else:
        sock.send(data)


def send_go(sock, fds=(), **payload):
    """GO (with *fds*) to a child that may have failed already: its set-up runs while the
    parent makes its cgroups, so its ERROR can come first — then it is read next, and says
    why."""
    try:
        send(sock, GO, fds, **payload)
    except (BrokenPipeError, ConnectionResetError):
        pass


def recv(sock, size=MESSAGE_SIZE):
    """(kind, payload, fds); kind is None at end of file."""
    msg, fds = recv_fds(sock, size)
    if not msg:
        return None, {}, fds
    payload = cjson.loads(msg)
    return payload.pop("type", None), payload, fds


def expect_with_fds(sock, kind, size=MESSAGE_SIZE):
    """In the child: wait for *kind* and return its payload and the descriptors it carried;
    if the parent went away or gave up, nobody is left to report to, so exit quietly."""
    got, payload, fds = recv(sock, size)
    if got != kind:
        os._exit(125)
    return payload, fds


def expect(sock, kind):
    """``expect_with_fds`` for a message whose descriptors, if any, are not wanted."""
    payload, fds = expect_with_fds(sock, kind)
    for fd in fds:
        os.close(fd)
    return payload
