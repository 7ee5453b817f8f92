"""What ``minirun run`` does once its flags are parsed (shared by click and the fast path).

No click here: the fast path imports this module.
"""


def run_any(root, host, options):
    """Foreground in this process, or ``-d`` through minirund; returns the exit code."""
    from ..engine.options import RunOptions
    labels = options.pop("label", None) or []
    options["labels"] = dict(l.partition("=")[::2] for l in labels)
    opts = RunOptions(**options)
    if not opts.detach:
        from ..engine.run import run_foreground
        return run_foreground(root, opts)
    from ..api.convert import create_body
    from .client import Client
    client = Client(host)
    cid = client.call("POST", "/containers/create", create_body(opts), name=opts.name)["Id"]
    client.call("POST", f"/containers/{cid}/start")
    print(cid)
    return 0
