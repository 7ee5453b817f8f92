"""Starting a recorded container: its cgroups, then the runtime.

Shared by the foreground ``minirun run`` and the daemon. On failure the
cgroups made here are removed again before the error goes up.
"""
from ..runtime import cgroups as cg
from ..runtime import container as rt


def start(spec, trace, outside=None, stdio=None):
    """Create the container's cgroups and start its PID 1; return (cgroups, Process)."""
    cgroups = cg.detect(trace)
    trace(f"cgroup v{cgroups.version}: mkdir {cg.PARENT}/{spec.id[:12]}",
          "a cgroup of its own in each hierarchy it is limited by")
    cgroups.create(spec.id, spec.limits)
    try:
        return cgroups, rt.start(spec, cgroups, trace, outside=outside, stdio=stdio)
    except BaseException:
        cgroups.remove(spec.id)
        raise
