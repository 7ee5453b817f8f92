"""Finishing what a killed minirun left behind.

A foreground ``minirun run`` is the supervisor of its container. If it is
killed outright (SIGKILL, a crash), the container dies with it (PDEATHSIG)
but its cgroups, directory and record stay. Every container record names
its supervisor (pid and start time), so the next command can tell an
orphan from a live container and finish the job: ``--rm`` containers go
entirely, others are recorded as exited (137, killed).

Containers of any state root that was deleted while they ran (a killed
daemon's, say) are ended here too, found by their cgroups' owner records.
"""
from ..runtime import cgroups as cg
from .volumes import remove_container

KILLED = 137


def reap_orphans(containers, networking, trace=lambda *a: None):
    """Clean up after killed foreground runs (detached containers outlive minirund)."""
    cg.sweep(trace)                    # cgroups whose state root was deleted meanwhile
    orphans = [r for r in containers.orphans()
               if containers.config(r).get("spec", {}).get("die_with_parent", True)]
    if not orphans:
        return
    driver = cg.detect()
    for row in orphans:
        driver.kill_all(row["id"])
        driver.remove(row["id"])
        networking.disconnect(row["id"])
        if containers.options(row).get("rm") or row["state"] == "created" \
                or containers.build_step(row):
            remove_container(containers, row["id"], volumes=True)
        else:
            containers.mark_exited(row["id"], KILLED)
        trace(f"cleaned up after container {row['id'][:12]}", "its minirun was killed")
