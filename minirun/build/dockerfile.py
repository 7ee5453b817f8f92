"""The Dockerfile language, read as Docker's classic builder reads it.

A Dockerfile is parser directives (``# escape=`` …, only at the very top), then
instructions, one per logical line: a line ending in the escape character goes
on with the next; comment lines (``#`` first) vanish, even inside a continued
instruction. Each instruction is a keyword (any case), leading ``--flags`` where
it takes them, and its arguments: a JSON array (the exec form) where the
instruction has one, otherwise the text as written (the shell form), or
``key=value`` pairs. Variables are left alone here: the builder substitutes
them (``words``) when it reaches the instruction, with the values it has there.
"""
import json
import re

from ..errors import MinirunError
from ..record import Record


class DockerfileError(MinirunError):
    pass


class Instruction(Record):
    FIELDS = {
        "cmd": "",            # lower case: "run", "copy" …
        "args": [],           # exec form or words: strings; env/label: [(key, value)]
        "text": "",           # the arguments as written (the shell form's command)
        "json": False,        # args came as a JSON array
        "flags": {},          # --name=value (value True for a bare --name)
        "line": 0,            # where it starts, for errors
        "original": "",       # the logical line, for messages
    }


JSON_FORMS = {"run", "cmd", "entrypoint", "shell", "copy", "add", "volume"}
FLAGS = {"from": {"platform"}, "copy": {"from", "chown", "chmod", "link"},
         "add": {"chown", "chmod", "link", "checksum", "keep-git-dir"},
         "healthcheck": {"interval", "timeout", "start-period", "start-interval", "retries"},
         "run": set()}          # RUN --mount/--network are BuildKit's: refused by name
KNOWN = {"from", "run", "cmd", "label", "maintainer", "expose", "env", "add", "copy",
         "entrypoint", "volume", "user", "workdir", "arg", "onbuild", "stopsignal",
         "healthcheck", "shell"}
_DIRECTIVE = re.compile(r"#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")


def parse(text):
    """Parse a Dockerfile; return (instructions, escape character)."""
    escape = "\\"
    lines = text.splitlines()
    i = 0
    seen = set()
    while i < len(lines):                  # parser directives: only before anything else
        m = _DIRECTIVE.match(lines[i])
        if not m:
            break
        key, value = m.group(1).lower(), m.group(2)
        if key in seen:
            raise DockerfileError(f"only one {key} parser directive can be used")
        seen.add(key)
        if key == "escape":
            if value not in ("\\", "`"):
                raise DockerfileError(f"invalid escape token '{value}' does not match "
                                      f"` or \\")
            escape = value
        i += 1
    instructions = []
    logical, start = "", 0
    for number in range(i, len(lines)):
        line = lines[number]
        stripped = line.lstrip()
        if stripped.startswith("#"):
            continue                            # comments, even inside a continuation
        if not stripped and not logical:
            continue
        if not logical:
            start = number + 1
        body = line.rstrip()
        if body.endswith(escape) and not _escaped_escape(body, escape):
            logical += body[:-1]
            continue
        logical += line if logical else stripped
        if logical.strip():
            instructions.append(_instruction(logical.strip(), start, escape))
        logical = ""
    if logical.strip():                         # a continuation at the end of the file
        instructions.append(_instruction(logical.strip(), start, escape))
    if not instructions:
        raise DockerfileError("the Dockerfile (Dockerfile) cannot be empty")
    return instructions, escape


def _escaped_escape(body, escape):
    """``RUN echo \\\\`` ends in an escaped escape: no continuation (as Docker reads it)."""
    n = len(body) - len(body.rstrip(escape))
    return n % 2 == 0


def _instruction(logical, line, escape):
    word, _, rest = logical.partition(" ")
    if "\t" in word:
        word, _, more = word.partition("\t")
        rest = more + " " + rest
    cmd, rest = word.lower(), rest.strip()
    if cmd not in KNOWN:
        raise DockerfileError(f"Dockerfile parse error line {line}: unknown instruction: "
                              f"{word.upper()}")
    flags, rest = _flags(cmd, rest, line)
    if cmd in ("run", "copy", "add") and rest.startswith("<<"):
        raise DockerfileError(f"Dockerfile parse error line {line}: here-documents ({rest[:8]}"
                              f"…) need BuildKit, which minirun's builder is not")
    ins = Instruction(cmd=cmd, text=rest, flags=flags, line=line, original=logical)
    if cmd in JSON_FORMS and rest.startswith("["):
        try:
            value = json.loads(rest)
        except ValueError:
            value = None                       # not JSON: the shell form, as Docker reads it
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            ins.args, ins.json = value, True
            return _checked(ins)
    if cmd in ("env", "label"):
        ins.args = _pairs(cmd, rest, line, escape)
    elif cmd == "arg":
        ins.args = _words(rest, escape)
    elif cmd in ("onbuild", "workdir", "user", "stopsignal", "maintainer"):
        ins.args = [rest] if rest else []      # the rest of the line is one argument
    else:
        ins.args = _words(rest, escape)
    return _checked(ins)


def _checked(ins):
    n = len(ins.args)
    need = {"from": (1, 3), "copy": (2, None), "add": (2, None), "workdir": (1, 1),
            "user": (1, 1), "stopsignal": (1, 1), "arg": (1, None), "env": (1, None),
            "label": (1, None), "expose": (1, None), "volume": (1, None),
            "onbuild": (1, 1), "maintainer": (1, None), "shell": (1, None),
            "run": (1, None), "entrypoint": (0, None), "cmd": (0, None),
            "healthcheck": (1, None)}[ins.cmd]
    low, high = need
    if ins.cmd == "shell" and not ins.json:
        raise DockerfileError(f"Dockerfile parse error line {ins.line}: SHELL requires the "
                              f"arguments to be in JSON form")
    if n < low or (high is not None and n > high) or (ins.cmd == "from" and n == 2) or \
            (ins.cmd == "from" and n == 3 and ins.args[1].lower() != "as"):
        what = {"copy": "at least two arguments", "add": "at least two arguments",
                "from": "either one or three arguments"}.get(
            ins.cmd, "exactly one argument" if high == 1 else "at least one argument")
        raise DockerfileError(f"Dockerfile parse error line {ins.line}: {ins.cmd.upper()} "
                              f"requires {what}")
    return ins


def _flags(cmd, rest, line):
    allowed = FLAGS.get(cmd)
    flags = {}
    while rest.startswith("--"):
        word, _, after = rest.partition(" ")
        if word == "--":
            rest = after.strip()
            break
        name, eq, value = word[2:].partition("=")
        if allowed is None or name not in allowed:
            raise DockerfileError(f"Dockerfile parse error line {line}: unknown flag: {name}"
                                  + (" (RUN --mount and --network need BuildKit, which "
                                     "minirun's builder is not)" if cmd == "run" else ""))
        flags[name] = value if eq else True
        rest = after.strip()
    return flags, rest


def _words(text, escape):
    """Whitespace-separated words; quotes kept (substitution removes them later)."""
    words, current, quote, i = [], "", "", 0
    while i < len(text):
        c = text[i]
        if c == escape and i + 1 < len(text) and quote != "'":
            current += c + text[i + 1]
            i += 2
            continue
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c.isspace():
            if current:
                words.append(current)
            current = ""
            i += 1
            continue
        current += c
        i += 1
    if current:
        words.append(current)
    return words


def _pairs(cmd, text, line, escape):
    """ENV/LABEL: ``k=v k2="v 2"`` (quotes kept for substitution), or the old ``k v`` form."""
    words = _words(text, escape)
    if not words:
        raise DockerfileError(f"Dockerfile parse error line {line}: {cmd.upper()} requires "
                              f"at least one argument")
    if "=" not in words[0]:
        key, _, value = text.partition(" ")
        if "\t" in key:
            key, _, value = text.partition("\t")
        if not value.strip():
            raise DockerfileError(f"Dockerfile parse error line {line}: {cmd.upper()} must "
                                  f"have two arguments")
        return [(key, value.strip())]
    pairs = []
    for w in words:
        key, eq, value = w.partition("=")
        if not eq or not key:
            raise DockerfileError(f"Dockerfile parse error line {line}: {cmd.upper()} names "
                                  f"can not be blank or has no '=': {w!r}")
        pairs.append((key, value))
    return pairs
