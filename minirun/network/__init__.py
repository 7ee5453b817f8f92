"""Container networking: what Docker's libnetwork (or CNI's bridge plugin) does.

    host ── minirun0 (bridge, 10.88.0.1/16) ─┬─ veth… ══ eth0 in container A (10.88.0.2)
            NAT: masquerade out, DNAT in     └─ veth… ══ eth0 in container B (10.88.0.3)

- ``subnets``  picks subnets that do not clash with the host's routes.
- ``store``    records networks, each container's address on them (IPAM) and its published
               ports, in the state database: collision-free under concurrency, kept across
               restarts, released with the container.
- ``links``    bridges and veth pairs, through rtnetlink requests (``linux/rtnetlink.py``).
- ``firewall`` masquerade, published ports and isolation between networks, in minirun's own
               nftables table (or iptables chains): the host's rules are never touched.
- ``hosts``    /etc/hosts for each container: how containers on a network find each other.
- ``wiring``   puts the pieces together when a container starts and stops.
"""
