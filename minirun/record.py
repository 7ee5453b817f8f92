"""Plain records with defaults.

dataclasses would do, but importing them (and inspect with them) costs more
than a container's whole set-up on a slow machine; ``minirun run`` is on the
clock, so its records are these.
"""
class Record:
    FIELDS = {}       # name -> default (mutable defaults are copied per instance)

    def __init__(self, **values):
        unknown = set(values) - set(self.FIELDS)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field(s) {sorted(unknown)}")
        for name, default in self.FIELDS.items():
            setattr(self, name, values[name] if name in values else _fresh(default))

    def as_dict(self):
        return {name: getattr(self, name) for name in self.FIELDS}

    def __repr__(self):
        return f"{type(self).__name__}({self.as_dict()!r})"

    def __eq__(self, other):
        return type(self) is type(other) and self.as_dict() == other.as_dict()


def _fresh(default):
    """A per-instance copy of a mutable default (``copy`` costs another import)."""
    if isinstance(default, (list, dict)):
        return type(default)(default)
    if isinstance(default, Record):
        return type(default)(**default.as_dict())
    return default
