"""Credentials, kept as Docker keeps them: ``~/.docker/config.json``, ``auths``, mode 0600.

Docker Hub's entry is keyed ``https://index.docker.io/v1/``; every other
registry by its host[:port]. ``DOCKER_CONFIG`` names another directory.
"""
import base64
import json
import os
import re

HUB_KEY = "https://index.docker.io/v1/"
HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io")


def config_path():
    folder = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(folder, "config.json")


def key_for(server):
    server = re.sub(r"^https?://", "", server or "").rstrip("/")
    return HUB_KEY if not server or server in HUB_HOSTS or server.startswith(
        "index.docker.io/") else server


def _load():
    try:
        with open(config_path()) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def _save(doc):
    path = config_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent="\t")
    os.rename(tmp, path)


def credentials(server):
    """(user, password) stored for *server*, or None."""
    entry = (_load().get("auths") or {}).get(key_for(server)) or {}
    if entry.get("auth"):
        user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        return user, password
    return None


def store(server, user, password):
    doc = _load()
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    doc.setdefault("auths", {})[key_for(server)] = {"auth": token}
    _save(doc)


def forget(server):
    """True if there was something to forget."""
    doc = _load()
    if key_for(server) not in (doc.get("auths") or {}):
        return False
    del doc["auths"][key_for(server)]
    _save(doc)
    return True


def parse_challenge(header):
    """'Bearer realm="…",service="…",scope="…"' → ("bearer", {realm, service, scope})."""
    scheme, _, rest = (header or "").strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', rest)}
    return scheme.lower(), params
