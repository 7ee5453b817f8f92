"""The last locks before exec: user, rlimits, capabilities, no_new_privs.

Order matters. The capability bounding set is cut while still root (it
takes CAP_SETPCAP); then the user changes (for a non-root user the kernel
empties the permitted and effective sets by itself); then, for root, the
permitted/effective/inheritable sets are set to exactly the allowed ones.
"""
import os
import resource

from ..errors import MinirunError
from ..linux.capability import CAPS, capget, capset, last_cap
from ..linux.process import (capbset_drop, capbset_read, clear_ambient_caps, raise_ambient_cap,
                             set_keepcaps, set_no_new_privs)

RLIMITS = {
    "core": resource.RLIMIT_CORE, "cpu": resource.RLIMIT_CPU, "data": resource.RLIMIT_DATA,
    "fsize": resource.RLIMIT_FSIZE, "locks": 10,   # RLIMIT_LOCKS: Python lacks the name
    "memlock": resource.RLIMIT_MEMLOCK, "msgqueue": resource.RLIMIT_MSGQUEUE,
    "nice": resource.RLIMIT_NICE, "nofile": resource.RLIMIT_NOFILE,
    "nproc": resource.RLIMIT_NPROC, "rss": resource.RLIMIT_RSS,
    "rtprio": resource.RLIMIT_RTPRIO, "rttime": resource.RLIMIT_RTTIME,
    "sigpending": resource.RLIMIT_SIGPENDING, "stack": resource.RLIMIT_STACK,
    "as": resource.RLIMIT_AS,
}


class UserError(MinirunError):
    pass


def _entries(path):
    try:
        with open(path) as f:
            return [l.rstrip("\n").split(":") for l in f if l.strip() and not l.startswith("#")]
    except OSError:
        return []


def resolve_user(spec_user):
    """(uid, gid, supplementary gids, home) for ``-u``, read from the container's /etc."""
    user, _, group = (spec_user or "0").partition(":")
    passwd = [e for e in _entries("/etc/passwd") if len(e) >= 7]
    groups = [e for e in _entries("/etc/group") if len(e) >= 3]
    entry = next((e for e in passwd if e[0] == user or (user.isdigit() and e[2] == user)), None)
    if entry is None and not user.isdigit():
        raise UserError(f"unable to find user {user}: no matching entries in passwd file")
    uid = int(user) if user.isdigit() else int(entry[2])
    gid = int(entry[3]) if entry else 0
    home = entry[5] if entry else "/"
    if group:
        g = next((e for e in groups if e[0] == group or (group.isdigit() and e[2] == group)), None)
        if g is None and not group.isdigit():
            raise UserError(f"unable to find group {group}: no matching entries in group file")
        gid = int(group) if group.isdigit() else int(g[2])
    name = entry[0] if entry else None
    extra = sorted({int(e[2]) for e in groups if name and name in e[3].split(",")} - {gid})
    return uid, gid, extra, home


def home_of(uid):
    """The home directory /etc/passwd gives *uid*, else / (runc's HOME for an OCI process)."""
    entry = next((e for e in _entries("/etc/passwd") if len(e) >= 7 and e[2] == str(uid)), None)
    return entry[5] if entry else "/"


def resolve_groups(names):
    """--group-add: names (from the container's /etc/group) or numbers → gids."""
    groups = [e for e in _entries("/etc/group") if len(e) >= 3]
    out = []
    for name in names:
        if str(name).isdigit():
            out.append(int(name))
            continue
        g = next((e for e in groups if e[0] == name), None)
        if g is None:
            raise UserError(f"unable to find group {name}: no matching entries in group file")
        out.append(int(g[2]))
    return out


def set_rlimits(rlimits, trace):
    for name, soft, hard in rlimits:
        try:
            resource.setrlimit(RLIMITS[name], (soft, hard))
        except (ValueError, OSError) as e:      # above the kernel's ceiling (nr_open, …)
            raise MinirunError(f"setting RLIMIT_{name.upper()} to {soft}:{hard}: "
                               f"{getattr(e, 'strerror', None) or e}") from None
        trace(f"setrlimit(RLIMIT_{name.upper()}, {soft}, {hard})", "a per-process resource ceiling")


def cap_numbers(names):
    return [CAPS[n] for n in names]


def drop_bounding_caps(keep, trace):
    keep = set(cap_numbers(keep))
    for cap in range(last_cap() + 1):     # every cap the kernel knows, named or not
        if cap not in keep and capbset_read(cap):
            capbset_drop(cap)
    clear_ambient_caps()
    trace(f"prctl(PR_CAPBSET_DROP) all but {len(keep)} capabilities",
          "no process in the container can ever regain the others")


def switch_user(uid, gid, groups, trace):
    os.setgroups(groups)
    os.setgid(gid)
    os.setuid(uid)
    trace(f"setgroups({groups}) setgid({gid}) setuid({uid})", "run as the image's or -u's user")


def set_caps(keep, uid, trace):
    """Root gets exactly *keep*; any other user gets none (the kernel cleared them)."""
    caps = cap_numbers(keep) if uid == 0 else []
    effective, permitted, _ = capget()       # narrowed only: none can be raised here
    capset(effective.intersection(caps), permitted.intersection(caps), ())
    trace(f"capset(effective=permitted={len(caps)} caps, inheritable=none)",
          "root in the container is not root on the host")


def keep_caps_across_setuid():
    """An OCI process may keep capabilities as a non-root user: setuid must not clear them."""
    set_keepcaps(True)


def set_cap_sets(sets, trace):
    """An OCI process's five sets, exactly (after the user switch; bounding is cut already)."""
    numbers = {k: cap_numbers(sets.get(k, ())) for k in ("effective", "permitted", "inheritable")}
    capset(numbers["effective"], numbers["permitted"], numbers["inheritable"])
    set_keepcaps(False)
    for cap in cap_numbers(sets.get("ambient", ())):
        try:
            raise_ambient_cap(cap)
        except OSError:
            pass          # not in permitted and inheritable: runc only warns, and goes on
    trace(f"capset(effective={len(numbers['effective'])}, permitted={len(numbers['permitted'])}"
          f", inheritable={len(numbers['inheritable'])} caps)", "the sets config.json gives")


def no_new_privs(trace):
    set_no_new_privs()
    trace("prctl(PR_SET_NO_NEW_PRIVS, 1)", "setuid binaries and file caps grant nothing")
