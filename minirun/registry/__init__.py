"""The registry, both sides of the OCI Distribution Spec (Docker's fifth part).

- ``storage``  the server's files: blobs by digest, repositories as links to them.
- ``server``   ``minirun registry serve``: the spec's HTTP API over those files.
- ``client``   talking to any registry: auth (Basic, Bearer tokens), manifests, blobs.
- ``pull``/``push``  images between a registry and the local image store.
- ``auth``     credentials as Docker keeps them (~/.docker/config.json).
"""
