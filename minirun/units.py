"""Docker's spellings of sizes and durations, parsed in one place for every door that takes
them (the engine's flags and API fields, minirun-runc's ``update`` and ``events``).

No regular expressions: minirun-runc imports this on every command, where ``re`` would be
compiled patterns' worth of start-up for two small grammars.
"""
BYTE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                  "m": 60_000_000_000, "h": 3_600_000_000_000}


def _number(text):
    """A decimal as Docker writes one (digits, maybe a fraction) → float; ValueError if not."""
    whole, dot, fraction = text.partition(".")
    if not whole.isdigit() or (dot and not fraction.isdigit()) or not whole.isascii():
        raise ValueError(text)
    return float(text)


def parse_bytes(text):
    """Docker's RAMInBytes: 64m, 1g, 512k, 64mb, 1024 (binary units) → bytes; ValueError."""
    t = text.strip().lower()
    if len(t) > 1 and t[-1] == "b" and t[-2] in "kmgt":
        t = t[:-1]                                    # 64mb as 64m
    unit = t[-1] if t and t[-1] in "bkmgt" else ""
    return int(_number(t[:len(t) - len(unit)].strip()) * BYTE_UNITS[unit])


def parse_duration(text):
    """Go's duration syntax (30s, 1m30s, 500ms; a bare number is seconds) → nanoseconds;
    ValueError if not one."""
    text = str(text).strip()
    if text.isdigit() and text.isascii():
        return int(text) * DURATION_UNITS["s"]
    total, i = 0.0, 0
    while i < len(text):
        j = i
        while j < len(text) and (text[j].isdigit() or text[j] == "."):
            j += 1
        unit = next((u for u in ("ns", "us", "µs", "ms", "h", "m", "s")
                     if text.startswith(u, j)), None)
        if j == i or unit is None:
            raise ValueError(text)
        total += _number(text[i:j]) * DURATION_UNITS[unit]
        i = j + len(unit)
    if not text:
        raise ValueError(text)
    return int(total)
