"""cjson (the start path's JSON, on CPython's C scanner and encoder) against json itself."""
import json
import math
import subprocess
import sys

import pytest

from minirun import cjson

VALUES = [
    {"a": [1, 2.5, None, True, False, "x\u00e9\n\"\\\u2028\U0001f600"], "b": {"c": {}}},
    "a string", 0, -1, 12345678901234567890, 1e100, -0.0, 0.1, [], {}, [[[]]],
    {"z": 1, "a": 2, "m": [3, {"y": None}]},
]


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("kw", [{}, {"sort_keys": True}, {"separators": (",", ":")}])
def test_it_writes_what_json_writes(value, kw):
    """A manifest's digest is over its bytes: the same value must give the same text."""
    assert cjson.dumps(value, **kw) == json.dumps(value, **kw)


@pytest.mark.parametrize("value", VALUES)
def test_it_reads_what_json_reads(value):
    for text in (json.dumps(value), json.dumps(value, indent=2), f" \n\t{json.dumps(value)}\r "):
        assert cjson.loads(text) == json.loads(text)
        assert cjson.loads(text.encode()) == json.loads(text)


def test_nan_and_infinity_read_and_written_as_json_does():
    assert math.isnan(cjson.loads("NaN")) and cjson.loads("[-Infinity]") == [-math.inf]
    assert cjson.dumps([math.inf, -math.inf]) == json.dumps([math.inf, -math.inf])


@pytest.mark.parametrize("text", ["", " ", "{", "[1,]", "1 2", "nul", '"\x01"', '{"a":1}x',
                                  "\ufeff{}", '{"a" 1}', "[" * 100_000 + "]" * 100_000,
                                  b"\xff\xfe", b'"\xc3"'])
def test_what_json_refuses_is_a_value_error(text):
    """Hostile input (a blob's config, a request body) is one clear error: never an
    exception a caller does not expect, nor a value json would refuse."""
    with pytest.raises(ValueError):
        cjson.loads(text)


@pytest.mark.parametrize("value", [object(), {1j: 2}, {1, 2}, b"bytes"])
def test_what_json_cannot_write_is_a_type_error(value):
    with pytest.raises(TypeError):
        cjson.dumps(value)


def test_a_cycle_is_refused():
    loop = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular"):
        cjson.dumps(loop)


def test_a_syntax_error_is_a_value_error_where_json_was_never_imported():
    """As on the start path: the C scanner's error class lives in json.decoder, which this
    test process has imported, so the check runs in a fresh interpreter."""
    code = ("from minirun import cjson\n"
            "for text in ('{not json', '[1', '\"abc', '{\"a\" 1}'):\n"
            "    try:\n"
            "        cjson.loads(text)\n"
            "    except ValueError as e:\n"
            "        print(type(e).__name__, e)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        "JSONDecodeError Expecting property name enclosed in double quotes: line 1 column 2 "
        "(char 1)", "JSONDecodeError Expecting ',' delimiter: line 1 column 3 (char 2)",
        "JSONDecodeError Unterminated string starting at: line 1 column 1 (char 0)",
        "JSONDecodeError Expecting ':' delimiter: line 1 column 6 (char 5)"], p.stdout
