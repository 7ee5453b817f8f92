"""The layers of docs/architecture.md, checked: each package imports only those below it.

A package that imports a higher one (or two that import each other) fails here,
with the offending module named, whether the import is at the top of a module or
inside a function.
"""
import ast
import os

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "minirun")

BASE = {"errors", "config", "record", "fsutil", "humanize", "statedb", "httpbody", "units",
        "cjson", "charsets", "__version__"}
# Each layer and what it may import besides BASE (docs/architecture.md draws the same).
ALLOWED = {
    "linux": set(),
    "image": {"linux"},
    "runtime": {"linux"},
    "network": {"linux"},
    "oci": {"linux", "runtime"},
    "registry": {"linux", "image"},
    "engine": {"linux", "image", "runtime", "network", "registry"},
    "build": {"linux", "image", "runtime", "network", "registry", "engine"},
    "api": {"linux", "image", "runtime", "network", "registry", "engine", "build"},
    "cli": {"linux", "image", "runtime", "network", "registry", "engine", "build", "api"},
    "main": {"cli"},
    "__main__": {"main"},
}


def imports(path, module):
    """(line, top-level minirun name) for every minirun import in a file."""
    tree = ast.parse(open(path).read())
    here = module.split(".")[:-1] if not path.endswith("__init__.py") else module.split(".")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - (node.level - 1)]
                targets = [".".join(base + [node.module])] if node.module else \
                    [".".join(base + [a.name]) for a in node.names]
            else:
                targets = [node.module or ""]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for t in targets:
            parts = t.split(".")
            if parts[0] == "minirun" and len(parts) > 1:
                yield node.lineno, parts[1]


def modules():
    for folder, _, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                rel = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
                yield path, rel.removesuffix(".__init__")


def test_every_package_imports_only_the_layers_below_it():
    wrong = []
    for path, module in modules():
        parts = module.split(".")
        if len(parts) < 2 or parts[1] in BASE:
            continue          # minirun/__init__ and the base modules import only the base
        layer = parts[1]
        for line, target in imports(path, module):
            if target != layer and target not in BASE and target not in ALLOWED[layer]:
                wrong.append(f"{module}:{line} imports minirun.{target}")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_the_base_modules_import_only_each_other():
    wrong = [f"{module}:{line} imports minirun.{target}" for path, module in modules()
             if module.split(".")[-1] in BASE and module.count(".") == 1
             for line, target in imports(path, module) if target not in BASE]
    assert not wrong, wrong


def test_waits_on_a_descriptor_go_through_fsutil_readable():
    """select(2) raises for a descriptor numbered past 1023, and minirund holds three for each
    container: past ~340 containers a stop, an exec or a cp that waited with select failed.
    Every wait is poll(2), in one place; it works on a descriptor numbered past 1024."""
    import resource
    from minirun.fsutil import readable
    calls = [f"{module}:{node.lineno}" for path, module in modules()
             for node in ast.walk(ast.parse(open(path).read()))
             if isinstance(node, ast.Attribute) and node.attr == "select"
             and isinstance(node.value, ast.Name) and node.value.id == "select"]
    assert not calls, "select.select used: " + ", ".join(calls)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), max(hard, 2048)))
    r, w = os.pipe()
    high = []
    try:
        high = [os.dup2(r, 1500), os.dup2(w, 1501)]
        assert not readable(1500, 0)
        os.write(1501, b"x")
        assert readable(1500, 0) and readable(1500)
    finally:
        for fd in (r, w, *high):
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
