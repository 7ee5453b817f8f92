# Sourced by the benchmarks' entry scripts: `bench_run SCRIPT.py ARGS...` runs the Python half.
#
# crun (1.8) and podman's crun refuse hybrid cgroup hosts, so on one the run happens in a
# private mount namespace with the cgroup2 mount hidden (as ../shared/peers/ns_wrap.sh does);
# the host's mount table is untouched and every runtime is measured in the same view. Bench
# cgroups (the bundles' /minirun-bench parent, which runc and crun leave) are removed in that
# view by the script itself, and once more here, outside it: the hidden cgroup2 hierarchy holds
# one too when runc ran a bench bundle by hand (runc makes its parent in every hierarchy).
bench_run() {
    local script=$1
    shift
    if grep -q ' /sys/fs/cgroup/unified cgroup2 ' /proc/mounts; then
        local rc=0
        MINIRUN_BENCH_WRAPPED=1 unshare -m --propagation private sh -c \
            'umount /sys/fs/cgroup/unified && exec "$0" "$@"' .venv/bin/python "$script" "$@" \
            || rc=$?
        PYTHONPATH=scripts/bench .venv/bin/python -c \
            'from common import remove_bench_cgroups; remove_bench_cgroups()'
        return $rc
    fi
    exec .venv/bin/python "$script" "$@"
}
