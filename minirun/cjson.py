"""JSON for the start path: CPython's C scanner and encoder, the very code behind
``json.loads`` and ``json.dumps``, without the json package's Python layer around them.

That layer imports and compiles ``re`` (and, through it, ``enum``): ~6 ms of every
``minirun run``, more than the container's mounts take (docs/architecture.md, "What a start
imports"). The text written and the values read are json's, with its defaults
(``ensure_ascii``, NaN and Infinity allowed, ``strict`` strings). ``dumps(indent=…)`` hands
over to json itself; a module that wants json's other options is off the start path and
uses json.
"""
import _json

WHITESPACE = " \t\n\r"          # what JSON allows between tokens, and json skips


class _Decoding:
    """The settings _json.make_scanner reads: json.JSONDecoder's defaults."""
    strict = True
    object_hook = object_pairs_hook = None
    parse_float, parse_int = float, int
    parse_constant = staticmethod(float)       # NaN, Infinity, -Infinity, as json reads them


_scan = _json.make_scanner(_Decoding())


def loads(text):
    """The value in *text* (str, or UTF-8 bytes); ValueError for anything that is not one
    JSON value with only whitespace around it."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode()                   # UnicodeDecodeError is a ValueError
    start = len(text) - len(text.lstrip(WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration as e:                 # nothing that starts a value at *start*
        raise ValueError(f"Expecting value: char {e.value}") from None
    except RecursionError:                     # [[[[…: a hostile blob, not a crash
        raise ValueError("nested too deeply") from None
    except SystemError:
        # The scanner reports a syntax error as json.decoder.JSONDecodeError, which Python
        # 3.11 looks for only among the modules already imported: without it the error is
        # lost. A rare path, so import it then, and scan again for json's own message.
        import json.decoder  # noqa: F401
        value, end = _scan(text, start)
    if text[end:].strip(WHITESPACE):
        raise ValueError(f"Extra data: char {end}")
    return value


def _unserializable(value):
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(value, sort_keys=False, separators=None, indent=None):
    """*value* as json.dumps writes it with these arguments (and its defaults otherwise).
    Indented text, written for people to read (minirun-runc's state, spec, features), comes
    from json itself: the C encoder does not indent."""
    if indent is not None:
        import json
        return json.dumps(value, sort_keys=sort_keys, separators=separators, indent=indent)
    item_separator, key_separator = separators or (", ", ": ")
    encode = _json.make_encoder({}, _unserializable, _json.encode_basestring_ascii, None,
                                key_separator, item_separator, sort_keys, False, True)
    return "".join(encode(value, 0))
