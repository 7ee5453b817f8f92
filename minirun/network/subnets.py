"""Choosing subnets that clash with nothing the host already routes (IPv4 and IPv6)."""
import ipaddress

# The default bridge's subnet: podman's choice, or the next free one below it, then Docker's
# default pools (172.17-31.0.0/16, 192.168.0-240.0/20).
DEFAULT_POOL = ([f"10.{n}.0.0/16" for n in range(88, 79, -1)]
                + [f"172.{n}.0.0/16" for n in range(17, 32)]
                + [f"192.168.{n}.0/20" for n in range(0, 241, 16)])
USER_POOL = [f"10.89.{n}.0/24" for n in range(256)]   # user networks, in order


def host_routes():
    """The IPv4 destinations the host routes (its own networks), from /proc/net/route."""
    nets = []
    with open("/proc/net/route") as f:
        next(f)
        for line in f:
            fields = line.split()
            dest, mask = (ipaddress.IPv4Address(bytes.fromhex(x)[::-1]) for x in (fields[1], fields[7]))
            if int(mask):                                   # the default route clashes with nothing
                nets.append((fields[0], ipaddress.IPv4Network(f"{dest}/{mask}", strict=False)))
    return nets


def host_routes6():
    """The IPv6 destinations the host routes, from /proc/net/ipv6_route (link-local,
    multicast and the default route aside: they clash with no ULA or global subnet)."""
    nets = []
    try:
        with open("/proc/net/ipv6_route") as f:
            for line in f:
                fields = line.split()
                net = ipaddress.IPv6Network(f"{ipaddress.IPv6Address(bytes.fromhex(fields[0]))}"
                                            f"/{int(fields[1], 16)}", strict=False)
                if net.prefixlen and not (net.is_link_local or net.is_multicast
                                          or net.prefixlen == 128):
                    nets.append((fields[9], net))
    except FileNotFoundError:                       # a kernel without IPv6
        pass
    return nets


def clash(subnet, taken=()):
    """What *subnet* (IPv4 or IPv6) overlaps: a host route's device, a taken subnet, or None."""
    net = ipaddress.ip_network(subnet)
    for dev, route in host_routes() if net.version == 4 else host_routes6():
        if net.overlaps(route):
            return f"the host's route {route} (dev {dev})"
    for other in taken:
        other_net = ipaddress.ip_network(other)
        if other_net.version == net.version and net.overlaps(other_net):
            return f"network {other}"
    return None


def pick(candidates, taken):
    """The first candidate subnet that clashes with nothing."""
    for subnet in candidates:
        if clash(subnet, taken) is None:
            return subnet
    return None


def parse(text, version=4):
    """A user's --subnet: an IPv4 (IPv6) network with room for a gateway and a container."""
    kind, smallest = (ipaddress.IPv4Network, 29) if version == 4 else (ipaddress.IPv6Network, 124)
    try:
        net = kind(text, strict=True)
    except ValueError as e:
        raise ValueError(f"invalid subnet {text!r}: {e}") from None
    if net.prefixlen > smallest:
        raise ValueError(f"subnet {text} is too small (at most /{smallest})")
    return str(net)


def ula_pool(owner, count=256):
    """IPv6 subnets for networks created without one: /64s of a unique local /48 (RFC 4193)
    whose 40-bit global ID is derived from the host's machine ID and the state root, so two
    roots, or two hosts, are unlikely to pick the same (Docker derives its from a host ID)."""
    import hashlib                 # it loads OpenSSL: only for an IPv6 network's creation
    try:
        with open("/etc/machine-id") as f:
            machine = f.read().strip()
    except OSError:
        machine = ""
    global_id = hashlib.sha256(f"{machine}\n{owner}".encode()).digest()[:5]
    base = int.from_bytes(b"\xfd" + global_id + b"\0" * 10, "big")
    return [str(ipaddress.IPv6Network((base + (n << 64), 64))) for n in range(count)]
