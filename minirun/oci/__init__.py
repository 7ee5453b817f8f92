"""minirun-runc: runc's command line over minirun's runtime, for the engines that call one.

containerd's runc shim (and through it Kubernetes' CRI), podman's conmon and
dockerd's ``--add-runtime`` all start containers by running an OCI runtime
binary: ``create`` a container from a bundle (a root file system and its
``config.json``), ``start`` it, ask its ``state``, ``kill`` and ``delete`` it.
This package is that binary: it reads the bundle (bundle.py), keeps each
container's state in a directory of its own (state.py), forks the container's
first process and sees it through its set-up (create.py, init.py) and runs the
bundle's hooks (hooks.py); main.py is the command line. The isolation itself —
namespaces, cgroups, mounts, the lock-down — is runtime/'s, shared with
``minirun run``.
"""
