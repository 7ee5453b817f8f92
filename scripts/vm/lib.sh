# Sourced by scripts/vm/*: where the test VM lives on the host, and how to reach it.
#
# Everything the VM route makes on the host is under $VM_DIR (default /var/tmp/minirun-vm):
#   image/   the built guest (disk.raw, vmlinuz, initrd-mini.img, id_ed25519, key): a cache,
#            rebuilt when scripts/vm/build-image, scripts/lib/install.sh or pyproject.toml change
#   run/     one booted guest: qemu.pid, a throw-away qcow2 overlay, console.log, ssh.sock;
#            emptied by scripts/vm/stop
#   image-bench/, run-bench/   the same for scripts/bench/vm-vs-container's bare Debian guest
#            (VM_IMG, VM_RUN, VM_PORT and VM_IMAGE_KIND=bench set by that script)
# The guest's only network is qemu's user-mode NIC with restrict=on (no way out) and one port
# forward from 127.0.0.1:$VM_PORT to its ssh: no bridge, no tap, no NAT on the host.

VM_DIR=${VM_DIR:-/var/tmp/minirun-vm}
VM_IMG=${VM_IMG:-$VM_DIR/image}
VM_RUN=${VM_RUN:-$VM_DIR/run}
VM_PORT=${VM_PORT:-2222}

vm_ssh() {   # vm_ssh CMD...: run CMD in the guest as root (through the master connection if up)
    ssh -q -p "$VM_PORT" -i "$VM_IMG/id_ed25519" -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o ConnectTimeout=10 \
        -o ServerAliveInterval=30 -o ServerAliveCountMax=10 \
        -o "ControlPath=$VM_RUN/ssh.sock" root@127.0.0.1 "$@"
}

# The key the cached image is built for: the files that decide what is in it (the bench's
# bare Debian takes nothing from the project's package lists).
vm_image_key() {   # vm_image_key KIND
    local top
    top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    if [ "$1" = bench ]; then
        cat "$top/scripts/vm/build-image"
    else
        cat "$top/scripts/vm/build-image" "$top/scripts/lib/install.sh" "$top/pyproject.toml"
    fi | sha256sum | cut -c1-16
}
