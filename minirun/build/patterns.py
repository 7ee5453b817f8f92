"""Path patterns: .dockerignore's rules and COPY's wildcards, as Docker matches them.

A pattern is Go's ``filepath.Match`` syntax — ``*`` (no ``/``), ``?``, ``[a-z]``,
``[^a]``, the escape ``\\`` — plus ``**`` for any number of directories. In
.dockerignore a line ``!pattern`` takes back what an earlier line excluded; the
last line that matches a path decides, and a path is also excluded when one of
its parent directories is.
"""
import posixpath
import re

from ..errors import MinirunError


class PatternError(MinirunError):
    pass


def compile_pattern(pattern):
    """A compiled regular expression for a cleaned, relative pattern."""
    out, i = "^", 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            if pattern[i + 1:i + 2] == "*":
                i += 1
                while pattern[i + 1:i + 2] == "*":
                    i += 1
                if i + 1 == len(pattern):
                    out += ".*"
                elif pattern[i + 1] == "/":
                    out += "(.*/)?"
                    i += 1
                else:
                    out += ".*"
            else:
                out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "\\":
            i += 1
            if i >= len(pattern):
                raise PatternError(f"syntax error in pattern {pattern!r}")
            out += re.escape(pattern[i])
        elif c == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1:i + 2] in ("^", "!") else i + 1)
            if end < 0:
                raise PatternError(f"syntax error in pattern {pattern!r}")
            body = pattern[i + 1:end]
            if body[:1] in ("^", "!"):
                body = "^" + body[1:]
            out += "[" + body.replace("\\", "\\\\") + "]"
            i = end
        else:
            out += re.escape(c)
        i += 1
    try:
        return re.compile(out + "$", re.S)
    except re.error:
        raise PatternError(f"syntax error in pattern {pattern!r}") from None


def has_wildcards(text):
    return any(c in text for c in "*?[\\")


def clean(path):
    """A context-relative path: ``./a//b/`` → ``a/b``, ``/a`` → ``a``, ``.`` → ``.``."""
    cleaned = posixpath.normpath("/" + path).lstrip("/")
    return cleaned or "."


class Ignore:
    """The rules of a .dockerignore file."""

    def __init__(self, text=""):
        self.rules = []                 # (regex, excluded?)
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            keep = line.startswith("!")
            if keep:
                line = line[1:].strip()
            pattern = clean(line)
            if pattern == ".":
                continue                # "." would exclude the context itself
            self.rules.append((compile_pattern(pattern), not keep))
        self.has_exceptions = any(not excluded for _, excluded in self.rules)

    def excluded(self, path):
        """Is the context-relative *path* left out of the context?"""
        if not self.rules:
            return False
        parents = []
        head = path
        while "/" in head:
            head = head.rpartition("/")[0]
            parents.insert(0, head)
        result = False
        for regex, excluded in self.rules:
            if regex.match(path) or any(regex.match(p) for p in parents):
                result = excluded
        return result

    def prunes(self, directory):
        """Can a walk skip the excluded *directory* whole? Not when an exception might
        take back something below it."""
        return not self.has_exceptions and self.excluded(directory)
