"""``minirun push``: an image of the local store to a registry, exactly as stored.

The manifest's bytes (and so its digest) are the ones the image was loaded or
pulled with; each blob it names (config, layers) is uploaded unless the
registry has it already, in parallel, then the manifest is put under the tag.
"""
from concurrent.futures import ThreadPoolExecutor

from ..errors import MinirunError
from ..image import manifest as mf
from .client import Client
from .pull import PARALLEL, short


def push(store, ref, client=None, progress=lambda *a, **k: None):
    """Push the image *ref* names; return (manifest digest, manifest size)."""
    image_id = store.resolve(str(ref))
    manifest_digest = store.record(image_id)["manifest_digest"]
    data = store.blobs.read(manifest_digest)
    doc = mf.loads(data)
    config, layers = mf.parse_manifest(doc)
    client = client or Client(ref.domain)
    missing = [d["digest"] for d in [config, *layers] if not store.blobs.has(d["digest"])]
    if missing:
        raise MinirunError(f"{ref}: the store lacks blob {missing[0]} of this image, so it "
                           f"cannot be pushed as it was loaded")

    def upload(desc):
        digest, blob_id = desc["digest"], short(desc["digest"])
        progress(blob_id, "Preparing")
        if client.has_blob(ref.path, digest):
            progress(blob_id, "Layer already exists")
            return
        progress(blob_id, "Pushing", 0, desc.get("size"))
        client.upload(ref.path, digest, desc["size"], lambda: store.blobs.open(digest))
        progress(blob_id, "Pushed")
    with ThreadPoolExecutor(PARALLEL) as pool:
        list(pool.map(upload, [*layers, config]))
    pushed = client.put_manifest(ref.path, ref.tag or manifest_digest, data, mf.media_type(doc))
    if pushed and pushed != manifest_digest:
        raise MinirunError(f"the registry stored the manifest as {pushed}, "
                           f"not {manifest_digest}")
    return manifest_digest, len(data)


def push_image(store, ref, client, progress):
    """push() with Docker's messages around it (``push`` and minirund's /images/…/push)."""
    progress.say(f"The push refers to repository [{ref.repository}]")
    digest, size = push(store, ref, client, progress)
    progress.say(f"{ref.tag}: digest: {digest} size: {size}",
                 aux={"Tag": ref.tag, "Digest": digest, "Size": size})
