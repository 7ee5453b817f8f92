"""How the CLI shows things: Docker's tables, sizes and ages."""
import datetime
import re
import time

_UNITS = ["B", "kB", "MB", "GB", "TB", "PB"]


def human_size(n):
    """Docker's (go-units) HumanSize: decimal units, 3 significant digits."""
    n = float(n)
    i = 0
    while n >= 1000 and i < len(_UNITS) - 1:
        n /= 1000
        i += 1
    return f"{n:.3g}{_UNITS[i]}"


def parse_time(text):
    """An RFC 3339 timestamp (Go writes nanoseconds) as a Unix time, or None."""
    if not text:
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", text).replace("Z", "+00:00")
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def human_duration(seconds):
    """go-units HumanDuration, as in ``2 weeks ago``."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(s / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // 24 // 7} weeks"
    if h < 24 * 365 * 2:
        return f"{h // 24 // 30} months"
    return f"{h // 24 // 365} years"


def ago(timestamp):
    if timestamp is None:
        return "N/A"
    return human_duration(time.time() - timestamp) + " ago"


def table(header, rows):
    """Columns padded like Docker's tabwriter (three spaces between)."""
    rows = [header] + [list(map(str, r)) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for r in rows:
        cells = [c.ljust(w) for c, w in zip(r[:-1], widths)] + [r[-1]]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines)
