"""Published ports as Docker writes them: -p [ip:][hostport:]containerport[/proto], -P."""

from ..errors import MinirunError

ANY = "0.0.0.0"


class PortError(MinirunError):
    pass


def _port(text, what, spec, allow_zero=False):
    if not text.isdigit() or not (0 if allow_zero else 1) <= int(text) <= 65535:
        raise PortError(f"invalid {what} {text!r} in -p {spec}: use a number from 1 to 65535")
    return int(text)


def parse_publish(spec):
    """'[ip:][hostport:]containerport[/tcp|udp]' → (proto, host_ip, host_port, container_port).

    host_port 0 means "any free port", chosen when the container starts."""
    rest, _, proto = spec.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp"):
        raise PortError(f"invalid protocol {proto!r} in -p {spec}: use tcp or udp")
    if rest.startswith("["):
        raise PortError(f"-p {spec}: IPv6 host addresses are not supported")
    parts = rest.split(":")
    if len(parts) > 3 or not parts[-1]:
        raise PortError(f"invalid -p {spec}: use [ip:][hostport:]containerport[/proto]")
    if any("-" in p for p in parts[-2:]):
        raise PortError(f"-p {spec}: port ranges are not supported")
    container_port = _port(parts[-1], "container port", spec)
    host_port = _port(parts[-2], "host port", spec) if len(parts) >= 2 and parts[-2] else 0
    host_ip = parts[0] if len(parts) == 3 and parts[0] else ANY
    import ipaddress           # only with -p: `minirun run` imports this module
    try:
        ipaddress.IPv4Address(host_ip)
    except ValueError:
        raise PortError(f"invalid host address {host_ip!r} in -p {spec}") from None
    return proto, host_ip, host_port, container_port


def parse_exposed(key):
    """An image's or --expose's '80/tcp' (or '80') → (port, proto)."""
    port, _, proto = str(key).partition("/")
    proto = proto or "tcp"
    if not port.isdigit() or proto not in ("tcp", "udp") or not 1 <= int(port) <= 65535:
        raise PortError(f"invalid exposed port {key!r}")
    return int(port), proto


def bindings(publish, publish_all, exposed):
    """Every port to publish: -p ones, then -P's exposed ports not already published."""
    out = [parse_publish(p) for p in publish]
    if publish_all:
        done = {(b[3], b[0]) for b in out}
        for key in exposed:
            port, proto = parse_exposed(key)
            if (port, proto) not in done:
                out.append((proto, ANY, 0, port))
    return out


def key(proto, container_port):
    """Docker's map key: '80/tcp'."""
    return f"{container_port}/{proto}"
