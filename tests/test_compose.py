"""docker-compose (1.29, on docker-py) against minirund: the seed's "several services on one
machine" — a user network (internal, with IPv6: the database has no way out), a named volume,
a published port, depends_on a healthy service."""
import json
import os
import shutil
import subprocess

import pytest
from conftest import SLACK, wait_for
from test_network import free_port, http_get

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not shutil.which("docker-compose"),
                                 reason="docker-compose is not installed")]

COMPOSE = """
version: "2.4"
services:
  db:
    image: busybox
    command: sh -c 'mkdir -p /data && echo ready-$$HOSTNAME > /data/state && exec httpd -f -p 80 -h /data'
    volumes: [dbdata:/data]
    healthcheck:
      test: ["CMD-SHELL", "test -s /data/state"]
      interval: 1s
      timeout: 5s
      retries: 3
    networks: [back]
  web:
    image: busybox
    command: sh -c 'mkdir -p /www && while :; do wget -qO /www/index.html http://db/state; sleep 1; done'
    depends_on:
      db: {condition: service_healthy}
    networks: [back]
  front:
    image: busybox
    command: sh -c 'mkdir -p /www && echo front > /www/index.html && exec httpd -f -p 80 -h /www'
    ports: ["127.0.0.1:PORT:80"]
volumes:
  dbdata: {}
networks:
  back:
    internal: true
    enable_ipv6: true
    ipam:
      config: [{subnet: 10.125.7.0/24}, {subnet: "fd12:3456:789a:7::/64"}]
"""


def compose(daemon, tmp_path, *args, check=True):
    p = subprocess.run(["docker-compose", "-p", "shop", *args], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120 * SLACK,
                       env={**os.environ, "DOCKER_HOST": "unix://" + daemon.sock})
    if check:
        assert p.returncode == 0, p.stdout + p.stderr
    return p


def test_a_multi_service_app_up_ps_logs_exec_run_stop_down(daemon, tmp_path):
    port = free_port()
    (tmp_path / "docker-compose.yml").write_text(COMPOSE.replace("PORT", str(port)))
    compose(daemon, tmp_path, "up", "-d")
    state = json.loads(daemon.cli("inspect", "shop_db_1").stdout)[0]["State"]
    assert state["Health"]["Status"] == "healthy"           # web started only after this
    assert wait_for(lambda: http_get(f"http://127.0.0.1:{port}/") == "front\n")
    ps = compose(daemon, tmp_path, "ps").stdout
    assert "shop_web_1" in ps and "shop_db_1" in ps and "Up (healthy)" in ps
    assert wait_for(lambda: compose(daemon, tmp_path, "exec", "-T", "web", "cat",
                                    "/www/index.html", check=False).stdout.startswith("ready-"))
    assert compose(daemon, tmp_path, "exec", "-T", "db", "cat", "/data/state").stdout \
        .startswith("ready-")
    out = compose(daemon, tmp_path, "run", "--rm", "-T", "web", "sh", "-c",
                  "wget -qO- http://db/state").stdout
    assert out.startswith("ready-")                           # by name, on the network
    out = compose(daemon, tmp_path, "run", "--rm", "-T", "web", "sh", "-c",
                  "ip route; ip -6 addr show eth0").stdout
    assert "default" not in out and "inet6 fd12:3456:789a:7::" in out   # internal, IPv6
    assert "shop_db_1" in compose(daemon, tmp_path, "logs", "--no-color", "db").stdout
    assert "shop_dbdata" in daemon.cli("volume", "ls", "-q").stdout.split()
    assert "shop_back" in daemon.cli("network", "ls").stdout
    compose(daemon, tmp_path, "stop")
    assert daemon.cli("ps", "-q").stdout == ""
    compose(daemon, tmp_path, "down", "-v")
    assert daemon.cli("ps", "-aq").stdout == ""
    assert daemon.cli("volume", "ls", "-q").stdout == ""
    assert "shop_back" not in daemon.cli("network", "ls").stdout
