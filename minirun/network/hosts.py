"""/etc/hosts: how containers on one user network find each other by name.

Each container's /etc/hosts is a file in its directory, bind-mounted into
it. Below a marker line it lists the running containers it shares a user
network with (name and --network-alias). The file is rewritten in place,
never replaced, because a bind mount holds the inode, not the name.
"""
MARKER = "# containers on the same networks (kept up to date by minirun)\n"


def base(hostname, ip=None):
    lines = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    if ip:
        lines += f"{ip}\t{hostname}\n"
    return lines


def rewrite(path, peers):
    """Replace the peer section of the hosts file at *path* with *peers* [(ip, names)]."""
    try:
        f = open(path, "r+")
    except FileNotFoundError:
        return
    with f:
        head = f.read().split(MARKER)[0]
        body = "".join(f"{ip}\t{' '.join(names)}\n" for ip, names in peers)
        f.seek(0)
        f.write(head + (MARKER + body if body else ""))
        f.truncate()
