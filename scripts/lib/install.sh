# Sourced by scripts/setup and scripts/test: install minirun on Debian/Ubuntu, idempotently.
# Host packages through apt (only when one is missing), a virtual environment in .venv
# on the system's real python3 (not a pyenv shim: that costs 80 ms per call), and
# /usr/local/bin/minirun pointing at its console script.

HOST_PACKAGES=(python3 python3-venv busybox-static zstd tini iproute2 util-linux procps nftables)
# What the tests use besides: the iptables backend, the registry's interop peers, and the
# engines whose images minirun must load and that must load minirun's (docker, podman), and
# docker-compose (1.29, on docker-py) against minirund; a C compiler for a static test program.
TEST_PACKAGES=(iptables skopeo docker-registry docker.io containerd podman docker-compose
               gcc libc6-dev)

# Run the calling script as root: itself when root already (sudo may be absent there, as on
# a fresh Debian), else again through sudo. Call as: as_root "$@"
as_root() {
    if [ "$(id -u)" = 0 ]; then
        return
    fi
    if command -v sudo >/dev/null; then
        exec sudo "$0" "$@"
    fi
    echo "minirun: $0 needs root, and there is no sudo: run it as root" >&2
    exit 1
}

require_root() {
    if [ "$(id -u)" != 0 ]; then
        echo "minirun: run this as root" >&2
        exit 1
    fi
}

install_host_packages() {
    local missing=()
    for p in "${HOST_PACKAGES[@]}" "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing: ${missing[*]}"
        apt-get update -qq
        # Install services without starting them (Debian's policy-rc.d): a dockerd that
        # starts here would change the host's firewall (FORWARD policy DROP) under the tests.
        local policy=/usr/sbin/policy-rc.d made=
        if [ ! -e "$policy" ]; then
            printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && made=1
        fi
        local rc=0
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null || rc=$?
        [ -z "$made" ] || rm -f "$policy"
        return $rc
    fi
}

install_minirun() {   # $1: pip extras, e.g. "[test]"
    require_root
    install_host_packages
    if [ ! -x .venv/bin/python ]; then
        /usr/bin/python3 -m venv .venv
    fi
    # compat mode: a plain path in a .pth; the default import hook costs ~20 ms per start
    .venv/bin/pip install -q --disable-pip-version-check -e ".${1:-}" \
        --config-settings editable_mode=compat
    # Bytecode now: where PYTHONDONTWRITEBYTECODE is set, every start would compile ~50
    # modules again (~55 ms); a stale .pyc is still noticed and recompiled.
    .venv/bin/python -m compileall -q minirun >/dev/null
    ln -sf "$PWD/.venv/bin/minirun" /usr/local/bin/minirun
    ln -sf "$PWD/.venv/bin/minirund" /usr/local/bin/minirund
    ln -sf "$PWD/.venv/bin/minirun-runc" /usr/local/bin/minirun-runc
}

build_busybox_image() {
    .venv/bin/python images/busybox/build.py
}
