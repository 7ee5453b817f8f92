"""Networks in the shapes Docker's API and CLI use (network ls / inspect)."""
import hashlib
import json
from datetime import datetime, timezone

from .store import DEFAULT_NETWORK


def _pseudo_id(name):
    return hashlib.sha256(f"minirun-{name}".encode()).hexdigest()


# host and none are modes, not records; Docker lists them as networks all the same.
PSEUDO = {"host": "host", "none": "null"}


def pseudo(name):
    return {"Name": name, "Id": _pseudo_id(name), "Created": "0001-01-01T00:00:00Z",
            "Scope": "local", "Driver": PSEUDO[name], "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None, "Config": []}, "Internal": False,
            "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""},
            "ConfigOnly": False, "Containers": {}, "Options": {}, "Labels": {}}


def find_pseudo(ref):
    return next((n for n in PSEUDO if ref in (n, _pseudo_id(n))), None)


def network_json(store, row):
    created = datetime.fromtimestamp(row["created"], timezone.utc).isoformat().replace("+00:00", "Z")
    members = {m["container_id"]: {
        "Name": m["name"], "EndpointID": "", "MacAddress": m["mac"],
        "IPv4Address": f"{m['ip']}/{row['subnet'].split('/')[1]}",
        "IPv6Address": f"{m['ip6']}/{row['subnet6'].split('/')[1]}" if m["ip6"] else ""}
        for m in store.members(row["id"])}
    # As dockerd: the default network shows its bridge; a user network shows only options it
    # was created with (none: its bridge is mr-<id>, store.user_bridge). docker-compose
    # recreates a network whose options differ from its file's.
    options = {}
    if row["name"] == DEFAULT_NETWORK:
        options = {"com.docker.network.bridge.name": row["bridge"],
                   "com.docker.network.bridge.default_bridge": "true"}
    ranges = json.loads(row["ipam"] or "{}")
    ipam = [_ipam_entry(row["subnet"], row["gateway"], ranges.get("4") or {})]
    if row["subnet6"]:
        ipam.append(_ipam_entry(row["subnet6"], row["gateway6"], ranges.get("6") or {}))
    return {"Name": row["name"], "Id": row["id"], "Created": created, "Scope": "local",
            "Driver": "bridge", "EnableIPv6": bool(row["subnet6"]),
            "IPAM": {"Driver": "default", "Options": None, "Config": ipam},
            "Internal": bool(row["internal"]), "Attachable": False, "Ingress": False,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": members,
            "Options": options, "Labels": json.loads(row["labels"])}


def _ipam_entry(subnet, gateway, ranges):
    """One IPAM.Config entry, with --ip-range and --aux-address where given."""
    entry = {"Subnet": subnet}
    if ranges.get("IPRange"):
        entry["IPRange"] = ranges["IPRange"]
    entry["Gateway"] = gateway
    if ranges.get("AuxiliaryAddresses"):
        entry["AuxiliaryAddresses"] = ranges["AuxiliaryAddresses"]
    return entry


def all_networks(store):
    return [network_json(store, r) for r in store.list()] + [pseudo(n) for n in PSEUDO]


def one(store, ref):
    name = find_pseudo(ref)
    return pseudo(name) if name else network_json(store, store.get(ref))
