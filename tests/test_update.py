"""docker update, stop signals and timeouts, and what create refuses rather than drops."""
import json
import time

import pytest
from test_attach import docker, needs_docker

pytestmark = pytest.mark.root


def cgroup_file(daemon, cid, v1, v2):
    """The value of a limit in the container's own cgroup (v1 or v2)."""
    from minirun.runtime import cgroups as cg
    driver = cg.detect()
    if driver.version == 2:
        return open(f"{driver.path(cid)}/{v2}").read().strip()
    controller, name = v1.split("/")
    return open(f"{driver.dirs(cid)[controller]}/{name}").read().strip()


@needs_docker
def test_docker_update_changes_a_running_containers_limits(daemon):
    cid = daemon.cli("run", "-d", "-m", "64m", "busybox", "sleep", "600").stdout.strip()
    p = docker(daemon, "update", "-m", "128m", "--cpus", "0.5", "--pids-limit", "33",
               "--restart", "on-failure:2", cid)
    assert p.returncode == 0, p.stderr
    assert cgroup_file(daemon, cid, "memory/memory.limit_in_bytes", "memory.max") == \
        str(128 << 20)
    assert cgroup_file(daemon, cid, "pids/pids.max", "pids.max") == "33"
    host = json.loads(docker(daemon, "inspect", cid).stdout)[0]["HostConfig"]
    assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (128 << 20, 500000000, 33)
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    daemon.cli("restart", "-t", "0", cid)                    # the new limits stay
    assert cgroup_file(daemon, cid, "pids/pids.max", "pids.max") == "33"
    p = docker(daemon, "update", "--kernel-memory", "10m", cid)
    assert p.returncode != 0
    daemon.cli("update", "--pids-limit", "44", cid)          # minirun's own
    assert cgroup_file(daemon, cid, "pids/pids.max", "pids.max") == "44"


def test_a_containers_stop_signal_and_timeout(daemon):
    daemon.cli("run", "-d", "--name", "usr1", "--stop-signal", "USR1", "--stop-timeout", "30",
               "busybox", "sh", "-c", "trap 'echo got-usr1; exit 7' USR1; "
               "while :; do sleep 0.1; done")
    time.sleep(0.5)
    start = time.monotonic()
    daemon.cli("stop", "usr1")
    assert time.monotonic() - start < 10                     # USR1 ended it, no 30 s wait
    assert daemon.cli("logs", "usr1").stdout == "got-usr1\n"
    config = json.loads(daemon.cli("inspect", "usr1").stdout)[0]["Config"]
    assert (config["StopSignal"], config["StopTimeout"]) == ("USR1", 30)
    p = daemon.cli("run", "-d", "--stop-signal", "NOPE", "busybox", "true", check=False)
    assert p.returncode != 0 and "invalid signal" in p.stderr


@needs_docker
@pytest.mark.parametrize("flags,field", [
    (["--ipc", "host"], "IpcMode"), (["--pid", "host"], "PidMode"), (["--uts", "host"], "UTSMode"),
    (["--device", "/dev/null:/dev/x"], "Devices"),
    (["--shm-size", "1g"], "ShmSize"), (["--sysctl", "net.ipv4.ip_forward=1"], "Sysctls"),
    (["--oom-score-adj", "100"], "OomScoreAdj"), (["--cgroup-parent", "x"], "CgroupParent"),
    (["--memory-swap", "1g", "-m", "64m"], "MemorySwap"), (["--cpu-quota", "1000"], "CpuQuota"),
    (["--domainname", "example.org"], "Domainname"),
])
def test_what_minirun_cannot_do_is_refused_not_dropped(daemon, flags, field):
    p = docker(daemon, "run", "-d", *flags, "busybox", "true")
    assert p.returncode != 0 and field.encode() in p.stderr and b"not supported" in p.stderr
    assert daemon.cli("ps", "-aq").stdout == ""              # and nothing was made


@needs_docker
def test_add_host_link_and_dns_go_into_the_containers_files(daemon):
    daemon.cli("network", "create", "lnk")
    daemon.cli("run", "-d", "--name", "target", "--network", "lnk", "busybox", "sleep", "600")
    ip = json.loads(daemon.cli("inspect", "target").stdout)[0]["NetworkSettings"]["Networks"][
        "lnk"]["IPAddress"]
    p = docker(daemon, "run", "--rm", "--network", "lnk", "--add-host", "db.test:192.0.2.7",
               "--link", "target:tgt", "--dns", "192.0.2.53", "--dns-search", "example.test",
               "busybox", "sh", "-c", "cat /etc/hosts /etc/resolv.conf")
    out = p.stdout.decode()
    assert "192.0.2.7\tdb.test" in out and f"{ip}\ttgt target" in out, out + p.stderr.decode()
    assert "nameserver 192.0.2.53" in out and "search example.test" in out
    p = docker(daemon, "run", "--rm", "--add-host", "x:host-gateway", "busybox", "true")
    assert p.returncode != 0 and b"host-gateway is not supported" in p.stderr
    p = docker(daemon, "run", "--rm", "--link", "target:tgt", "busybox", "true")
    assert p.returncode != 0 and b"not on network" in p.stderr


@needs_docker
def test_group_add_ip_and_mac_address(daemon):
    p = docker(daemon, "run", "--rm", "--group-add", "daemon", "--group-add", "1234", "-u",
               "nobody", "busybox", "id", "-G")
    groups = set(p.stdout.split())
    assert {b"1234"} <= groups and len(groups) >= 3, p.stdout + p.stderr   # nobody's, daemon
    daemon.cli("network", "create", "--subnet", "10.123.0.0/24", "fixed")
    p = docker(daemon, "run", "--rm", "--network", "fixed", "--ip", "10.123.0.77",
               "--mac-address", "02:42:ac:11:00:99", "busybox", "ip", "addr", "show", "eth0")
    assert b"inet 10.123.0.77/24" in p.stdout and b"02:42:ac:11:00:99" in p.stdout, p.stderr
    daemon.cli("run", "-d", "--name", "holder", "--network", "fixed", "--ip", "10.123.0.78",
               "busybox", "sleep", "600")
    for flags, text in ((["--network", "fixed", "--ip", "10.123.0.78"], b"already in use"),
                        (["--network", "fixed", "--ip", "10.99.0.5"], b"no configured subnet"),
                        (["--network", "bridge", "--ip", "10.88.0.50"],
                         b"user defined networks only"),
                        (["--mac-address", "01:00:5e:00:00:01"], b"invalid MAC address")):
        p = docker(daemon, "run", "--rm", *flags, "busybox", "true")
        assert p.returncode != 0 and text in p.stderr, (flags, p.stderr)
    assert daemon.cli("ps", "-aq").stdout.split() == [daemon.cli("ps", "-q").stdout.strip()]


@needs_docker
def test_docker_network_create_internal_and_ipv6(daemon):
    p = docker(daemon, "network", "create", "--internal", "--ipv6", "--subnet", "10.125.0.0/24",
               "--subnet", "fd12:3456:789a:2::/64", "in6")
    assert p.returncode == 0, p.stderr
    net = json.loads(docker(daemon, "network", "inspect", "in6").stdout)[0]
    assert (net["Internal"], net["EnableIPv6"]) == (True, True)
    assert [c["Subnet"] for c in net["IPAM"]["Config"]] == ["10.125.0.0/24",
                                                             "fd12:3456:789a:2::/64"]
    p = docker(daemon, "run", "--rm", "--network", "in6", "--ip6", "fd12:3456:789a:2::7",
               "busybox", "sh", "-c", "ip addr show eth0; ip route; ip -6 route")
    assert b"inet6 fd12:3456:789a:2::7/64" in p.stdout and b"inet 10.125.0." in p.stdout, \
        p.stdout + p.stderr
    assert b"default" not in p.stdout                  # internal: no way out
    cid = docker(daemon, "run", "-d", "--network", "in6", "busybox", "sleep", "600").stdout
    info = json.loads(docker(daemon, "inspect", cid.decode().strip()).stdout)[0]
    ep = info["NetworkSettings"]["Networks"]["in6"]
    assert (ep["GlobalIPv6Address"], ep["GlobalIPv6PrefixLen"], ep["IPv6Gateway"]) == \
        ("fd12:3456:789a:2::2", 64, "fd12:3456:789a:2::1")
    p = docker(daemon, "run", "--rm", "--network", "in6", "--ip6", "fd12:3456:789a:3::7",
               "busybox", "true")
    assert p.returncode != 0 and b"no configured subnet contains IP address" in p.stderr


@needs_docker
def test_ip_ranges_aux_addresses_and_network_connect_options(daemon):
    p = docker(daemon, "network", "create", "--subnet", "10.127.8.0/24", "--ip-range",
               "10.127.8.128/25", "--aux-address", "router=10.127.8.128", "two words")
    assert p.returncode == 0, p.stderr                          # (any name, as Docker)
    config = json.loads(docker(daemon, "network", "inspect", "two words").stdout)[0][
        "IPAM"]["Config"]
    assert config == [{"Subnet": "10.127.8.0/24", "IPRange": "10.127.8.128/25",
                       "Gateway": "10.127.8.1",
                       "AuxiliaryAddresses": {"router": "10.127.8.128"}}]
    p = docker(daemon, "run", "--rm", "--network", "two words", "busybox", "ip", "-o", "-4",
               "addr", "show", "eth0")
    assert b"inet 10.127.8.129/24" in p.stdout, p.stdout + p.stderr  # in the range, not aux
    cid = docker(daemon, "create", "busybox", "sleep", "600").stdout.decode().strip()
    p = docker(daemon, "network", "connect", "--ip", "10.127.8.50", "two words", cid)
    assert p.returncode == 0, p.stderr
    ep = json.loads(docker(daemon, "inspect", cid).stdout)[0]["NetworkSettings"]["Networks"][
        "two words"]
    assert ep["IPAddress"] == "10.127.8.50" and ep["IPAMConfig"] == {"IPv4Address":
                                                                      "10.127.8.50"}
    docker(daemon, "network", "disconnect", "two words", cid)
    for flags, text in ((["--link", "x:y"], b"links made by network connect"),
                        (["--driver-opt", "a=b"], b"DriverOpts")):
        p = docker(daemon, "network", "connect", *flags, "two words", cid)
        assert p.returncode != 0 and text in p.stderr and b"not supported" in p.stderr, \
            p.stderr
    from docker.types import IPAMConfig, IPAMPool            # (the CLI checks these itself)
    for pool, text in (({"iprange": "10.128.0.0/25"}, "not within the subnet"),
                       ({"aux_addresses": {"a": "10.128.0.9"}}, "not an address of")):
        with pytest.raises(Exception) as e:
            daemon.client().networks.create("bad", ipam=IPAMConfig(pool_configs=[
                IPAMPool(subnet="10.127.9.0/24", **pool)]))
        assert "400" in str(e.value) and text in str(e.value)
    assert "bad" not in daemon.cli("network", "ls").stdout


@needs_docker
def test_network_options_minirun_cannot_honour_are_refused(daemon):
    for flags, text in ((["--config-only"], b"config-only networks"),
                        (["-o", "com.docker.network.bridge.name=br9"], b"network options")):
        p = docker(daemon, "network", "create", *flags, "nope")
        assert p.returncode != 0 and text in p.stderr and b"not supported" in p.stderr, p.stderr
    assert "nope" not in daemon.cli("network", "ls").stdout
