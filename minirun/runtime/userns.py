"""User namespaces: the container's root is a range of unprivileged ids on the host.

    --userns=auto: ns uid 0..65535 = host uid B..B+65535 (B from minirun's /etc/subuid range)

How minirun does it: every other namespace and every mount is made by the
set-up process while it is still the host's root (as without a user namespace),
the image's layers are shown owned by the container's root through **idmapped
mounts** (mount_setattr(MOUNT_ATTR_IDMAP): nothing is copied or chowned, the
layers stay shared), and only at the end of the lock-down does the process enter
a new user namespace and become its root — host uid B, with capabilities that
count in its own user namespace only. A process exec'd into the container joins
that user namespace last in the same way. The cost of entering it last: the
container's network and UTS namespaces belong to the host's user namespace, so
its root cannot reconfigure them (it could not without CAP_NET_ADMIN/SYS_ADMIN
anyway); binding ports below 1024 and ping are opened to everyone in its network
namespace instead (the sysctls Docker also sets).
"""
import _signal as signal   # signal.py's C core, without its enums (docs/architecture.md)
import os

from ..linux import mount as m
from ..linux import namespaces as ns
from . import sync

RANGE = 65536          # ids per container, as Docker's and podman's auto mode


def write_maps(pid, base, count=RANGE):
    """From outside, as the host's root: ns ids 0..count-1 are host ids base..base+count-1."""
    write_id_maps(pid, [(0, base, count)], [(0, base, count)])


def write_id_maps(pid, uids, gids):
    """A user namespace's maps, each a list of (id inside, id outside, how many)."""
    for name, entries in (("uid_map", uids), ("gid_map", gids)):
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write("".join(f"{inside} {outside} {n}\n" for inside, outside, n in entries))


def mapping_namespace(base, count=RANGE, maps=None):
    """An fd of a user namespace with the container's maps, for idmapped mounts: a helper
    process makes it, we map it and keep a handle, the helper goes. *maps*: (uids, gids) as
    write_id_maps takes them, instead of "0 base count" (an OCI bundle's idmapped mount)."""
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        try:
            ns.unshare(ns.CLONE_NEWUSER)
            # Its PID as the mounted /proc names it: the set-up runs in a new PID namespace
            # but still sees the host's /proc, where fork()'s number means another process.
            os.write(w, os.readlink("/proc/self").encode())
            signal.pause()
        finally:
            os._exit(0)
    os.close(w)
    try:
        proc_pid = int(os.read(r, 32))
        if maps:
            write_id_maps(proc_pid, *maps)
        else:
            write_maps(proc_pid, base, count)
        return os.open(f"/proc/{proc_pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(r)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def idmapped_layers(spec, trace):
    """The image's layers as idmapped mounts in this mount namespace, under the container's
    directory; returns (directory, names) for the overlay's lowerdir."""
    base, count = spec.userns
    where = os.path.join(os.path.dirname(spec.upper), "lower")
    os.makedirs(where, mode=0o700, exist_ok=True)
    userns = mapping_namespace(base, count)
    try:
        names = []
        for i, layer in enumerate(spec.lower):
            target = os.path.join(where, str(i))
            os.makedirs(target, exist_ok=True)
            fd = m.open_tree(os.path.join(spec.layers_dir, layer))
            try:
                m.idmap(fd, userns)
                m.move_mount(fd, target)
            finally:
                os.close(fd)
            names.append(str(i))
    finally:
        os.close(userns)
    trace(f"mount_setattr(MOUNT_ATTR_IDMAP) on {len(names)} layers",
          f"the layers' root-owned files appear owned by the container's root (host uid {base})")
    return where, names


def open_ports_and_ping():
    """In the container's network namespace, before the user namespace: what CAP_NET_*
    would need (ports below 1024, ICMP echo) is open to all, as Docker sets it."""
    for name, value in (("ip_unprivileged_port_start", "0"), ("ping_group_range", "0 2147483647")):
        with open(f"/proc/sys/net/ipv4/{name}", "w") as f:
            f.write(value)


def enter(sock, base, trace):
    """The set-up's last step before the lock-down: a new user namespace, mapped by the
    parent, in which this process becomes root (host uid *base*)."""
    ns.unshare(ns.CLONE_NEWUSER)
    sync.send(sock, sync.USERNS)
    sync.expect(sock, sync.MAPPED)
    become_root()
    trace(f"unshare(CLONE_NEWUSER); uid_map 0 {base} {RANGE}",
          "root here is an unprivileged uid on the host")


def join(fd, base, trace):
    """exec: the container's user namespace, joined last (the others belong to the host's)."""
    ns.setns(fd, ns.CLONE_NEWUSER)
    become_root()
    trace(f"setns(user), uid_map 0 {base} {RANGE}", "the container's root: host uid " + str(base))


def become_root():
    os.setgroups([])
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
