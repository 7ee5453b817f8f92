"""Character sets, and the check the start path's parsers make with them instead of ``re``.

Names, tags, digests and IDs are validated on every ``minirun run``; importing ``re`` (and
``enum`` through it) would cost ~6 ms of each start (docs/architecture.md, "What a start
imports"). Off the start path, modules use ``re`` freely.
"""
DIGITS = "0123456789"
LOWER_HEX = DIGITS + "abcdef"
HEX = LOWER_HEX + "ABCDEF"
LOWER_ALNUM = DIGITS + "abcdefghijklmnopqrstuvwxyz"
ALNUM = LOWER_ALNUM + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def only(text, chars):
    """Whether every character of *text* is one of *chars* (true of "")."""
    return not text.strip(chars)      # strip removes them from both ends: all, if all are
