"""Networking: addresses, names, isolation, published ports, modes; checked from inside
containers and from the host over loopback and the containers' own bridge. The leak check
in conftest compares the host's links, addresses and firewall rules before and after."""
import contextlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import SLACK
from test_cgroups import running_id

from minirun.network.store import user_bridge

pytestmark = pytest.mark.root

FIREWALLS = ["nftables", "iptables"]
PONG = "nc -ll -p 7000 -e echo pong"
# A client that waits (up to 5 s) for the server to listen: prints what it answered.
ASK = "for i in $(seq 50); do r=$(nc -w 1 {host} 7000 </dev/null) && [ -n \"$r\" ] && " \
      "echo $r && exit 0; sleep 0.1; done; exit 1"


def run_sh(loaded, script, *flags, env=None):
    return loaded.run("--rm", *flags, "busybox", "sh", "-c", script, env=env)


@contextlib.contextmanager
def serving(loaded, name, script, *flags, env=None):
    """A container running *script* in the background (tini as PID 1, so SIGTERM ends it)."""
    proc = subprocess.Popen(loaded.argv("run", "--rm", "--init", "--name", name, *flags,
                                        "busybox", "sh", "-c", script),
                            env=loaded.env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        cid = running_id(loaded, name)
        yield cid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            loaded.reap_orphans()


def inspect_network(loaded, name):
    return json.loads(loaded("network", "inspect", name).stdout)[0]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    end = time.monotonic() + timeout * SLACK
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


HTTPD = "mkdir /w && echo hello-from-{name} > /w/index.html && httpd -f -p 80 -h /w"


# -- the default bridge ---------------------------------------------------------------

def test_container_gets_an_address_in_the_subnet_and_a_default_route(loaded):
    p = run_sh(loaded, "ip -o -4 addr show eth0; ip route; cat /etc/hosts; hostname")
    assert p.returncode == 0, p.stderr
    net = inspect_network(loaded, "bridge")["IPAM"]["Config"][0]
    addr = p.stdout.split("inet ")[1].split()[0]
    assert ipaddress.ip_interface(addr).network == ipaddress.ip_network(net["Subnet"])
    assert f"default via {net['Gateway']} dev eth0" in p.stdout
    ip = addr.split("/")[0]
    assert f"{ip}\t{p.stdout.split()[-1]}" in p.stdout          # own name in /etc/hosts


def test_the_bridge_stays_until_reset_and_its_containers_leave_nothing(loaded):
    bridge = inspect_network(loaded, "bridge")["Options"]["com.docker.network.bridge.name"]
    with serving(loaded, "one", "sleep 30", "-p", "80"):
        assert subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode == 0
        assert len(os.listdir(f"/sys/class/net/{bridge}/brif")) == 1
    assert os.listdir(f"/sys/class/net/{bridge}/brif") == []      # the container's veth went
    loaded("network", "reset")
    assert not os.path.exists(f"/sys/class/net/{bridge}")


def test_minirun_names_every_link_so_that_networkd_leaves_it_alone(tmp_path):
    """Each name minirun gives a link on the host matches the file that tells systemd-networkd
    to leave minirun's links alone, and that file is written (once) where networkd runs."""
    from fnmatch import fnmatch

    from minirun.network import networkd, store, wiring
    from minirun.network.names import HostNames
    made = [HostNames("/var/lib/minirun").default_bridge, HostNames(str(tmp_path)).default_bridge,
            store.user_bridge("0123456789abcdef" * 4), wiring.veth_name("fedcba987" * 7, "eth12")]
    assert all(len(n) <= 15 and any(fnmatch(n, g) for g in networkd.LINK_GLOBS) for n in made)
    assert not any(fnmatch(n, g) for n in ("eth0", "ens3", "veth12ab", "docker0", "cni0",
                                           "podman0", "virbr0") for g in networkd.LINK_GLOBS)
    config, booted = tmp_path / "network" / "05-minirun.network", tmp_path / "system"
    networkd.keep_off_our_links(str(config), str(booted))
    assert not config.exists()                             # not a systemd host: nothing written
    booted.mkdir()
    networkd.keep_off_our_links(str(config), str(booted))
    assert "[Link]\nUnmanaged=yes" in config.read_text()
    assert f"Name={' '.join(networkd.LINK_GLOBS)}\n" in config.read_text()
    networkd.release(str(config), present=lambda: ["lo", "eth0", "mrv0123456780"])
    assert config.exists()                                 # a container's veth is still there
    networkd.release(str(config), present=lambda: ["lo", "eth0", "veth12ab", "docker0"])
    assert not config.exists()                             # network reset's undo


@pytest.mark.skipif(subprocess.run(["systemctl", "is-active", "-q", "systemd-networkd"],
                                   capture_output=True).returncode if shutil.which("systemctl")
                    else True, reason="systemd-networkd does not run here (it does in scripts/test-vm's guest)")
def test_systemd_networkd_leaves_the_containers_links_alone(loaded):
    """On a host whose networkd matches every Ethernet link (the VM's image does, on purpose),
    a container's veth stays on its bridge and networkd calls it and the bridge unmanaged."""
    from minirun.network import wiring
    bridge = inspect_network(loaded, "bridge")["Options"]["com.docker.network.bridge.name"]
    with serving(loaded, "nd", "sleep 30") as cid:
        veth = wiring.veth_name(cid, "eth0")
        time.sleep(2 * SLACK)                    # what networkd would do, it does by now
        assert os.path.basename(os.readlink(f"/sys/class/net/{veth}/master")) == bridge
        states = dict(line.split()[1:5:3] for line in subprocess.run(
            ["networkctl", "list", "--no-legend"], capture_output=True, text=True).stdout.splitlines())
        assert states[veth] == "unmanaged" and states[bridge] == "unmanaged", states
        p = run_sh(loaded, "ping -c 1 -W 5 " + inspect_network(loaded, "bridge")["IPAM"]["Config"][0]["Gateway"])
        assert p.returncode == 0, p.stdout + p.stderr


def test_network_rm_removes_its_bridge(loaded):
    loaded("network", "create", "gone")
    bridge = user_bridge(inspect_network(loaded, "gone")["Id"])
    assert run_sh(loaded, "true", "--network", "gone").returncode == 0
    assert os.path.exists(f"/sys/class/net/{bridge}")
    loaded("network", "rm", "gone")
    assert not os.path.exists(f"/sys/class/net/{bridge}")


def test_network_none_has_only_loopback_and_host_shares_the_hosts(loaded):
    assert run_sh(loaded, "ls /sys/class/net", "--network", "none").stdout.split() == ["lo"]
    host_links = sorted(n.split(":")[1].split("@")[0].strip() for n in
                        subprocess.run(["ip", "-o", "link"], capture_output=True,
                                       text=True).stdout.splitlines())
    inside = run_sh(loaded, "ls /sys/class/net", "--network", "host").stdout.split()
    assert sorted(inside) == host_links


def test_50_containers_started_at_once_get_50_distinct_addresses(loaded):
    def one(i):          # no --rm: each keeps its address until removed, so none is reused
        return loaded.run("--name", f"c{i}", "busybox", "ip", "-o", "-4", "addr", "show", "eth0")
    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(one, range(50)))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results if r.returncode]
    addrs = {r.stdout.split("inet ")[1].split("/")[0] for r in results}
    assert len(addrs) == 50
    held = inspect_network(loaded, "bridge")["Containers"].values()
    assert {c["IPv4Address"].split("/")[0] for c in held} == addrs
    for row in loaded.containers().list():
        loaded.containers().remove(row["id"])
    assert inspect_network(loaded, "bridge")["Containers"] == {}


def test_an_address_is_kept_until_the_container_is_removed(loaded):
    p = loaded.run("--name", "keep", "busybox", "true")
    assert p.returncode == 0, p.stderr
    kept = inspect_network(loaded, "bridge")["Containers"]
    assert [c["Name"] for c in kept.values()] == ["keep"]
    ip = next(iter(kept.values()))["IPv4Address"].split("/")[0]
    other = run_sh(loaded, "ip -o -4 addr show eth0").stdout
    assert f"inet {ip}/" not in other                       # still held by the stopped one
    loaded.containers().remove(loaded.containers().get("keep")["id"])
    assert inspect_network(loaded, "bridge")["Containers"] == {}
    assert f"inet {ip}/" in run_sh(loaded, "ip -o -4 addr show eth0").stdout   # free again


# -- user networks: names and isolation -------------------------------------------------

@pytest.mark.parametrize("firewall", FIREWALLS)
def test_containers_on_a_user_network_reach_each_other_by_name(loaded, firewall):
    env = {"MINIRUN_FIREWALL": firewall}
    loaded("network", "create", "app")
    try:
        with serving(loaded, "srv", PONG, "--network", "app", "--network-alias", "db", env=env):
            for host in ("srv", "db"):
                p = run_sh(loaded, ASK.format(host=host), "--network", "app", env=env)
                assert (p.returncode, p.stdout.strip()) == (0, "pong"), p.stderr
    finally:
        loaded("network", "rm", "app")


@pytest.mark.parametrize("firewall", FIREWALLS)
def test_containers_on_different_networks_cannot_reach_each_other(loaded, firewall):
    env = {"MINIRUN_FIREWALL": firewall}
    loaded("network", "create", "front")
    loaded("network", "create", "back")
    try:
        with serving(loaded, "srv", PONG, "--network", "back", env=env):
            ip = next(iter(inspect_network(loaded, "back")["Containers"].values()))["IPv4Address"]
            ip = ip.split("/")[0]
            same = run_sh(loaded, ASK.format(host=ip), "--network", "back", env=env)
            assert same.stdout.strip() == "pong", same.stderr          # the server is up
            other = run_sh(loaded, "nc -w 2 %s 7000 </dev/null" % ip, "--network", "front",
                           env=env)
            assert other.returncode != 0 and "pong" not in other.stdout
    finally:
        loaded("network", "rm", "front", "back")


def test_names_are_not_visible_on_the_default_bridge(loaded):
    with serving(loaded, "srv", "sleep 30"):
        p = run_sh(loaded, "cat /etc/hosts")
        assert "srv" not in p.stdout


def test_network_connect_and_disconnect_a_running_container(loaded):
    loaded("network", "create", "extra")
    try:
        with serving(loaded, "srv", PONG, "--network", "extra"):
            with serving(loaded, "cli", "sleep 60"):
                loaded("network", "connect", "--alias", "buddy", "extra", "cli")
                pid = loaded.containers().get("cli")["pid"]      # no daemon, so no exec: nsenter
                ask = subprocess.run(["nsenter", "-t", str(pid), "-n", "-m", "-p", "sh", "-c",
                                      ASK.format(host="srv")], capture_output=True, text=True)
                assert ask.stdout.strip() == "pong", ask.stderr
                srv_hosts = open(loaded.containers().path(
                    loaded.containers().get("srv")["id"], "hosts")).read()
                assert "cli buddy" in srv_hosts
                loaded("network", "disconnect", "extra", "cli")
                links = subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "-o", "link"],
                                       capture_output=True, text=True).stdout.splitlines()
                assert sorted(l.split(":")[1].split("@")[0].strip() for l in links) == \
                    ["eth0", "lo"]
                assert "cli" not in open(loaded.containers().path(
                    loaded.containers().get("srv")["id"], "hosts")).read()
                assert "srv" not in open(loaded.containers().path(
                    loaded.containers().get("cli")["id"], "hosts")).read()
    finally:
        loaded("network", "rm", "extra")


# -- published ports ------------------------------------------------------------------

@pytest.mark.parametrize("firewall", FIREWALLS)
def test_a_published_port_is_reachable_via_loopback_and_the_bridge(loaded, firewall):
    env = {"MINIRUN_FIREWALL": firewall}
    port = free_port()
    with serving(loaded, "web", HTTPD.format(name="web"), "-p", f"{port}:80", env=env):
        gateway = inspect_network(loaded, "bridge")["IPAM"]["Config"][0]["Gateway"]
        assert http_get(f"http://127.0.0.1:{port}/") == "hello-from-web\n"
        assert http_get(f"http://{gateway}:{port}/") == "hello-from-web\n"
        assert loaded("port", "web").stdout == f"80/tcp -> 0.0.0.0:{port}\n"


FETCH = """if True:
    import sys, time, urllib.request
    end = time.monotonic() + float(sys.argv[2])
    while True:
        try:
            print(urllib.request.urlopen(sys.argv[1], timeout=1).read().decode(), end="")
            break
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)
"""


@contextlib.contextmanager
def another_host():
    """A network namespace standing in for another machine: it reaches this host at 10.127.0.1
    (and fd12:7f::1, with no IPv6 route beyond: only what is masqueraded can be answered)
    over a veth pair of the test's own. (Held by a process, not ``ip netns add``, which would
    leave its /run/netns mount behind.)"""
    holder = subprocess.Popen(["unshare", "--net", "sleep", "120"])
    pid = str(holder.pid)

    def inside(*argv, **kw):
        return subprocess.run(["nsenter", "-t", pid, "-n", *argv], **kw)
    try:
        own = os.readlink("/proc/self/ns/net")
        while os.readlink(f"/proc/{pid}/ns/net") == own:
            time.sleep(0.01)                          # until unshare has run
        subprocess.run(["ip", "link", "add", "mrtr-host", "type", "veth", "peer", "name",
                        "mrtr-remote", "netns", pid], check=True)
        subprocess.run(["ip", "addr", "add", "10.127.0.1/24", "dev", "mrtr-host"], check=True)
        subprocess.run(["ip", "addr", "add", "fd12:7f::1/64", "dev", "mrtr-host", "nodad"],
                       check=True)
        subprocess.run(["ip", "link", "set", "mrtr-host", "up"], check=True)
        for args in (("addr", "add", "10.127.0.2/24", "dev", "mrtr-remote"),
                     ("addr", "add", "fd12:7f::2/64", "dev", "mrtr-remote", "nodad"),
                     ("link", "set", "mrtr-remote", "up"), ("link", "set", "lo", "up"),
                     ("route", "add", "default", "via", "10.127.0.1")):
            inside("ip", *args, check=True)

        def remote(*argv):
            return inside(*argv, capture_output=True, text=True, timeout=30 * SLACK)
        remote.pid = pid
        yield remote
    finally:
        subprocess.run(["ip", "link", "del", "mrtr-host"], capture_output=True)
        holder.kill()
        holder.wait()


# Answers each connection with the address it came from, on port 7000 of both IP versions.
WHO = """if True:
    import socket
    s = socket.create_server(("::", 7000), family=socket.AF_INET6, dualstack_ipv6=True)
    while True:
        c, peer = s.accept()
        c.sendall(f"pong from {peer[0].removeprefix('::ffff:')}\\n".encode())
        c.close()
"""


@contextlib.contextmanager
def answering(remote):
    """WHO, running on the other host."""
    server = subprocess.Popen(["nsenter", "-t", remote.pid, "-n", sys.executable, "-c", WHO])
    try:
        for _ in range(100):
            if remote("ss", "-ltn", "sport = 7000").stdout.count("\n") > 1:
                break
            time.sleep(0.05)
        yield
    finally:
        server.kill()
        server.wait()


@pytest.mark.parametrize("firewall", FIREWALLS)
def test_an_internal_network_has_no_way_out_nor_in(loaded, firewall):
    """--internal: its containers reach each other, but get no default route, and one that
    adds a route itself (it has NET_ADMIN) still finds the firewall's wall; nor does another
    host get in. A network that is not internal reaches the other host, masqueraded."""
    env = {"MINIRUN_FIREWALL": firewall}
    loaded("network", "create", "--internal", "inner")
    loaded("network", "create", "outer")
    ask_out = "nc -w 2 10.127.0.2 7000 </dev/null"
    try:
        with another_host() as remote, answering(remote):
            p = run_sh(loaded, ask_out, "--network", "outer", env=env)
            assert p.stdout == "pong from 10.127.0.1\n", p.stderr
            with serving(loaded, "srv", PONG, "--network", "inner", env=env):
                p = run_sh(loaded, "ip route; " + ASK.format(host="srv"), "--network", "inner",
                           env=env)
                assert p.stdout.endswith("pong\n") and "default" not in p.stdout, p.stderr
                gateway = inspect_network(loaded, "inner")["IPAM"]["Config"][0]["Gateway"]
                p = run_sh(loaded, f"ip route add default via {gateway} && echo routed && "
                                   + ask_out, "--cap-add", "NET_ADMIN", "--network", "inner",
                           env=env)
                assert p.stdout == "routed\n" and p.returncode != 0, p.stdout + p.stderr
                ip = next(iter(inspect_network(loaded, "inner")["Containers"].values()))[
                    "IPv4Address"].split("/")[0]
                assert remote("ip", "route", "get", ip).returncode == 0  # routed via the host
                got = remote("busybox", "nc", "-w", "2", ip, "7000")
                assert got.returncode != 0 and "pong" not in got.stdout
            assert inspect_network(loaded, "inner")["Internal"] is True
    finally:
        loaded("network", "rm", "inner", "outer")


def test_an_ipv6_network(loaded):
    """--ipv6: each container has an IPv6 address beside its IPv4 one (or the --ip6 it asks
    for), finds its peers' in /etc/hosts, reaches them, and reaches another host masqueraded
    (that host has no route back to the containers' subnet)."""
    loaded("network", "create", "--ipv6", "--subnet", "fd12:3456:789a:1::/64", "six")
    try:
        # (before any bridge: a state root keeps the firewall its first bridge chose)
        p = run_sh(loaded, "true", "--network", "six", env={"MINIRUN_FIREWALL": "iptables"})
        assert p.returncode == 125 and "IPv6 networks need the nftables firewall" in p.stderr
        with another_host() as remote, answering(remote), \
                serving(loaded, "srv6", PONG, "--network", "six", "--ip6",
                        "fd12:3456:789a:1::99") as cid:
            p = run_sh(loaded, "grep srv6 /etc/hosts; ip -6 route show default; nc -w 2 "
                               "fd12:7f::2 7000 </dev/null; " + ASK.format(
                                   host="fd12:3456:789a:1::99"), "--network", "six")
            assert "fd12:3456:789a:1::99\tsrv6" in p.stdout, p.stdout + p.stderr
            assert "default via fd12:3456:789a:1::1 dev eth0" in p.stdout
            assert p.stdout.endswith("pong from fd12:7f::1\npong\n"), p.stdout + p.stderr
            member = inspect_network(loaded, "six")["Containers"][cid]
            assert member["IPv6Address"] == "fd12:3456:789a:1::99/64"
        net = inspect_network(loaded, "six")
        assert net["EnableIPv6"] is True and net["IPAM"]["Config"][1] == {
            "Subnet": "fd12:3456:789a:1::/64", "Gateway": "fd12:3456:789a:1::1"}
        # without a subnet: a /64 of the root's own unique local prefix
        loaded("network", "create", "--ipv6", "auto6")
        subnet = inspect_network(loaded, "auto6")["IPAM"]["Config"][1]["Subnet"]
        assert ipaddress.IPv6Network(subnet).prefixlen == 64 and subnet.startswith("fd")
    finally:
        loaded("network", "rm", "six")
        loaded("network", "rm", "auto6", check=False)


@pytest.mark.parametrize("firewall", FIREWALLS)
def test_a_container_reaches_a_published_port_through_the_gateway(loaded, firewall):
    """Hairpin: the DNATed connection goes back into the bridge it came from, masqueraded so
    that the answer returns the same way. (busybox wget without -T: with it, it crashes.)"""
    env = {"MINIRUN_FIREWALL": firewall}
    port = free_port()
    with serving(loaded, "web", HTTPD.format(name="web"), "-p", f"{port}:80", env=env):
        gateway = inspect_network(loaded, "bridge")["IPAM"]["Config"][0]["Gateway"]
        p = run_sh(loaded, f"for i in $(seq 30); do wget -q -O- http://{gateway}:{port}/ && "
                           f"exit 0; sleep 0.2; done; exit 1", env=env)
        assert p.stdout == "hello-from-web\n", p.stderr


@pytest.mark.parametrize("firewall", FIREWALLS)
def test_a_published_port_is_reachable_from_another_host(loaded, firewall):
    port = free_port()
    with another_host() as remote, serving(loaded, "web", HTTPD.format(name="web"), "-p",
                                           f"{port}:80", env={"MINIRUN_FIREWALL": firewall}):
        got = remote(sys.executable, "-c", FETCH, f"http://10.127.0.1:{port}/", "5")
        assert got.stdout == "hello-from-web\n", got.stderr
        # …while a port published on 127.0.0.1 only is not reachable from there.
    with another_host() as remote, serving(loaded, "local", HTTPD.format(name="local"), "-p",
                                           f"127.0.0.1:{port}:80",
                                           env={"MINIRUN_FIREWALL": firewall}):
        assert http_get(f"http://127.0.0.1:{port}/") == "hello-from-local\n"
        got = remote(sys.executable, "-c", FETCH, f"http://10.127.0.1:{port}/", "1")
        assert got.returncode != 0 and "hello" not in got.stdout


def test_rules_an_older_minirun_made_are_made_anew(loaded):
    """minirun 0.1 kept its rules in an ip-family table (no IPv6): after an upgrade, the next
    start makes the inet table from the state database, published ports of containers
    already running included, and the old table goes."""
    from minirun.network.names import HostNames
    table = HostNames(loaded.root).table
    port, port2 = free_port(), free_port()
    with serving(loaded, "old", HTTPD.format(name="old"), "-p", f"{port}:80"):
        assert http_get(f"http://127.0.0.1:{port}/") == "hello-from-old\n"
        subprocess.run(["nft", "delete", "table", "inet", table], check=True)
        subprocess.run(["nft", f'add table ip {table} {{ comment "{HostNames(loaded.root).owner}"; }}'],
                       check=True)
        with open(os.path.join(loaded.root, "network", "firewall"), "w") as f:
            f.write("nftables")                     # as 0.1 recorded it
        with serving(loaded, "new", HTTPD.format(name="new"), "-p", f"{port2}:80"):
            assert http_get(f"http://127.0.0.1:{port2}/") == "hello-from-new\n"
            assert http_get(f"http://127.0.0.1:{port}/") == "hello-from-old\n"
            tables = subprocess.run(["nft", "list", "tables"], capture_output=True,
                                    text=True).stdout
            assert f"table inet {table}\n" in tables and f"table ip {table}\n" not in tables


def test_a_random_port_on_127_0_0_1_and_publish_all(loaded):
    with serving(loaded, "web", HTTPD.format(name="web"), "-p", "127.0.0.1::80",
                 "--expose", "81", "-P"):
        mapped = loaded("port", "web").stdout.splitlines()
        assert len(mapped) == 2, mapped
        loop = loaded("port", "web", "80").stdout.strip()
        assert loop.startswith("127.0.0.1:")
        assert http_get(f"http://{loop}/") == "hello-from-web\n"
        any81 = loaded("port", "web", "81/tcp").stdout.strip()
        assert any81.startswith("0.0.0.0:") and int(any81.split(":")[1]) >= 32768


def test_a_port_in_use_fails_cleanly(loaded):
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        p = loaded.run("--rm", "-p", f"{port}:80", "busybox", "true")
    assert p.returncode == 125
    assert p.stderr.strip().endswith(f"Bind for 0.0.0.0:{port} failed: port is already allocated")
    assert loaded.containers().list() == []


@pytest.mark.parametrize("spec, error", [
    ("80/sctp", "invalid protocol"), ("99999", "invalid container port"),
    ("1.2.3:80:80", "invalid host address"), ("8000-8010:80", "port ranges are not supported"),
])
def test_bad_publish_specs_are_one_line_errors(loaded, spec, error):
    p = loaded.run("--rm", "-p", spec, "busybox", "true")
    assert p.returncode == 125 and error in p.stderr and len(p.stderr.splitlines()) == 1
    assert loaded.containers().list() == []


# -- container: mode, and faults ----------------------------------------------------------

def test_container_mode_shares_the_network_namespace(loaded):
    with serving(loaded, "srv", PONG) as cid:
        ns = subprocess.run(["readlink", f"/proc/{loaded.containers().get(cid)['pid']}/ns/net"],
                            capture_output=True, text=True).stdout.strip()
        p = run_sh(loaded, "readlink /proc/self/ns/net; " + ASK.format(host="127.0.0.1"),
                   "--network", "container:srv")
        assert p.stdout.split() == [ns, "pong"], p.stderr


def test_container_mode_needs_a_running_container(loaded):
    loaded.run("--name", "stopped", "busybox", "true")
    p = run_sh(loaded, "true", "--network", "container:stopped")
    assert p.returncode == 125
    assert "cannot join network of a non running container: stopped" in p.stderr
    loaded.containers().remove(loaded.containers().get("stopped")["id"])


def test_unknown_network_and_overlapping_subnet_are_refused(loaded):
    p = run_sh(loaded, "true", "--network", "nope")
    assert p.returncode == 125 and "network nope not found" in p.stderr
    loaded("network", "create", "--subnet", "10.123.0.0/24", "a")
    try:
        p = loaded("network", "create", "--subnet", "10.123.0.128/25", "b", check=False)
        assert p.returncode == 1 and "overlaps network 10.123.0.0/24" in p.stderr
        route = subprocess.run(["ip", "-o", "-4", "route"], capture_output=True,
                               text=True).stdout.split()[0]
        if route != "default":
            p = loaded("network", "create", "--subnet", route, "c", check=False)
            assert p.returncode == 1 and "overlaps the host's route" in p.stderr
    finally:
        loaded("network", "rm", "a")


def test_network_rm_refuses_a_network_with_containers(loaded):
    loaded("network", "create", "busy")
    loaded.run("--name", "member", "--network", "busy", "busybox", "true")
    p = loaded("network", "rm", "busy", check=False)
    assert p.returncode == 1 and "has active endpoints" in p.stderr
    loaded.containers().remove(loaded.containers().get("member")["id"])
    loaded("network", "rm", "busy")
    assert "busy" not in loaded("network", "ls").stdout


def test_a_killed_minirun_leaves_no_network_behind(loaded):
    proc = subprocess.Popen(loaded.argv("run", "--rm", "--name", "victim", "-p", "80",
                                        "busybox", "sleep", "60"), env=loaded.env())
    running_id(loaded, "victim")
    time.sleep(0.3)
    proc.kill()
    proc.wait()
    loaded.reap_orphans()          # as the next minirun command does; the leak check follows
    assert loaded.containers().list() == []


def test_network_ls_and_inspect_show_dockers_fields(loaded):
    loaded("network", "create", "--subnet", "10.124.0.0/24", "-l", "team=a", "mine")
    try:
        names = [l.split()[1] for l in loaded("network", "ls").stdout.splitlines()[1:]]
        assert set(names) == {"bridge", "host", "none", "mine"}
        net = inspect_network(loaded, "mine")
        assert net["Driver"] == "bridge" and net["Labels"] == {"team": "a"}
        assert net["IPAM"]["Config"] == [{"Subnet": "10.124.0.0/24", "Gateway": "10.124.0.1"}]
    finally:
        loaded("network", "rm", "mine")


def test_a_wiring_failure_half_way_leaves_nothing(loaded):
    """A host route that appears after the network was made: the start fails with one line
    and no bridge, veth, rule, address or container is left."""
    loaded("network", "create", "--subnet", "10.126.0.0/24", "late")
    subprocess.run(["ip", "link", "add", "mrtestbr0", "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", "10.126.0.200/24", "dev", "mrtestbr0"], check=True)
        subprocess.run(["ip", "link", "set", "mrtestbr0", "up"], check=True)
        p = run_sh(loaded, "true", "--network", "late", "-p", "80")
        assert p.returncode == 125
        assert "network late: its subnet 10.126.0.0/24 overlaps the host's route " \
            "10.126.0.0/24 (dev mrtestbr0)" in p.stderr and len(p.stderr.splitlines()) == 1
        assert loaded.containers().list() == []
        assert inspect_network(loaded, "late")["Containers"] == {}
    finally:
        subprocess.run(["ip", "link", "del", "mrtestbr0"], check=True)
    loaded("network", "rm", "late")


def test_a_deleted_state_root_leaves_no_bridge_or_table_for_ever(minirun, busybox_oci, tmp_path):
    """A root removed by hand (as users and test suites do) left its bridge and NAT table, and
    after nine such roots no new root found a default subnet. The next root's first bridge
    (or network reset) sweeps what a gone root left."""
    from conftest import Minirun
    from minirun.network.names import HostNames
    gone = Minirun(str(tmp_path / "gone"))
    gone("load", "-i", busybox_oci)
    gone("run", "--rm", "busybox", "true")          # makes its bridge and table
    names = HostNames(gone.root)
    assert os.path.exists(f"/sys/class/net/{names.default_bridge}")
    with open(f"/sys/class/net/{names.default_bridge}/ifalias") as f:
        assert f.read().strip() == "minirun:" + os.path.realpath(gone.root)
    shutil.rmtree(gone.root)
    minirun("load", "-i", busybox_oci)
    assert minirun("run", "--rm", "busybox", "true").returncode == 0
    assert not os.path.exists(f"/sys/class/net/{names.default_bridge}")
    assert names.table not in subprocess.run(["nft", "list", "tables"], capture_output=True,
                                             text=True).stdout


def test_network_prune_takes_the_bridges_with_the_networks(loaded):
    loaded("network", "create", "short")
    loaded("run", "--rm", "--network", "short", "busybox", "true")   # its bridge is made
    bridge = user_bridge(json.loads(loaded("network", "inspect", "short").stdout)[0]["Id"])
    assert os.path.exists(f"/sys/class/net/{bridge}")
    assert loaded("network", "prune").stdout.split() == ["short"]
    assert not os.path.exists(f"/sys/class/net/{bridge}")


def test_default_subnets_come_from_dockers_pools_once_podmans_are_taken():
    from minirun.network import subnets
    taken = [f"10.{n}.0.0/16" for n in range(80, 89)]
    assert subnets.pick(subnets.DEFAULT_POOL, taken) not in taken
    assert subnets.pick(subnets.DEFAULT_POOL, taken + ["172.17.0.0/16"]).startswith("172.")
