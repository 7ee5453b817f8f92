"""Choosing subnets that clash with nothing the host already routes."""
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


def clash(subnet, taken=()):
    """What *subnet* overlaps: a host route's device, a taken subnet, or None."""
    net = ipaddress.IPv4Network(subnet)
    for dev, route in host_routes():
        if net.overlaps(route):
            return f"the host's route {route} (dev {dev})"
    for other in taken:
        if net.overlaps(ipaddress.IPv4Network(other)):
            return f"network {other}"
    return None


def pick(candidates, taken):
    """The first candidate subnet that clashes with nothing."""
    for subnet in candidates:
        if clash(subnet, taken) is None:
            return subnet
    return None


def parse(text):
    """A user's --subnet: an IPv4 network with room for a gateway and a container."""
    try:
        net = ipaddress.IPv4Network(text, strict=True)
    except ValueError as e:
        raise ValueError(f"invalid subnet {text!r}: {e}") from None
    if net.prefixlen > 29:
        raise ValueError(f"subnet {text} is too small (at most /29)")
    return str(net)
