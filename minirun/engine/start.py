"""Starting a recorded container: its cgroups, the runtime, then its network.

Shared by the foreground ``minirun run`` and the daemon. On failure what was
made here (cgroups, network wiring) is removed again before the error goes up.
"""
from ..runtime import cgroups as cg
from ..runtime import container as rt
from .networking import wired as network_wired


def start(spec, trace, networking, outside=None, stdio=None, spawn=None, cgroups=None):
    """Start the container's PID 1 in cgroups of its own; return (cgroups, Process).

    *spawn*: who forks it (runtime.container.start's argument; minirund's fork server).
    *cgroups*: the cgroup driver, if the caller has one (minirund detects it once; reading
    the mount table again costs ~0.2 ms of every start)."""
    config = networking.containers.config(networking.containers.get(spec.id))
    networking.join_target(spec, config["options"])
    wired = network_wired(config["options"].get("network") or "")
    cgroups = cgroups or cg.detect(trace)

    def wire(proc):                     # its netns exists, its command has not run yet
        if wired:
            networking.connect(spec.id, proc.pid, config.get("ports", []), trace)
        if outside:
            outside(proc)
    try:
        return cgroups, rt.start(spec, cgroups, trace, outside=wire, stdio=stdio,
                                 spawn=spawn, owner=networking.containers.path(spec.id))
    except BaseException:
        if wired:
            networking.disconnect(spec.id)
        cgroups.remove(spec.id)
        raise
