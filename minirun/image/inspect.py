"""``image inspect``: the Docker Engine API's ImageInspect shape."""

ZERO_TIME = "0001-01-01T00:00:00Z"   # Go's zero time: Go clients cannot parse "" as a time
# dockerd shows every field of an image's Config, unset ones empty (clients index them)
CONFIG_FIELDS = {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
                 "AttachStdout": False, "AttachStderr": False, "Tty": False, "OpenStdin": False,
                 "StdinOnce": False, "Env": None, "Cmd": None, "Image": "", "Volumes": None,
                 "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None}


def inspect_image(store, image_id):
    record = store.record(image_id)
    config = store.config(image_id)
    refs = store.tags_of(image_id)
    return {
        "Id": image_id,
        "Parent": record["parent"] or "",
        "RepoTags": [f"{r.familiar_repository}:{r.tag}" for r in refs],
        "RepoDigests": sorted({f"{r.familiar_repository}@{record['manifest_digest']}"
                               for r in refs}),
        "Created": config.get("created") or ZERO_TIME,
        "Author": config.get("author", ""),
        "Config": {**CONFIG_FIELDS, **(config.get("config") or {})},
        "Architecture": config.get("architecture", ""),
        "Variant": config.get("variant", ""),
        "Os": config.get("os", ""),
        "Size": record["size"],
        "RootFS": {"Type": "layers", "Layers": config["rootfs"]["diff_ids"]},
        "GraphDriver": {"Name": "overlay",
                        "Data": {"LowerDirs": ":".join(reversed(store.layer_dirs(image_id)))}},
        # Go clients parse these as times: never "", Go's zero time instead (as dockerd)
        "Metadata": {"LastTagTime": ZERO_TIME},
    }
