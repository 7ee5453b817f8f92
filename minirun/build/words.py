"""Variable substitution and quote removal in Dockerfile arguments (Docker's ShellLex).

``$NAME``, ``${NAME}`` and the modifiers ``${NAME:-word}`` / ``${NAME-word}`` (a default),
``${NAME:+word}`` / ``${NAME+word}`` (an alternative) and ``${NAME:?msg}`` / ``${NAME?msg}``
(an error); the colon forms treat an empty value as unset. Single quotes keep everything
literal, double quotes keep spaces but still substitute, and the escape character (``\\``
unless ``# escape=`` changed it) makes the next character literal. A substituted value is
never split into more words, as in Docker.
"""
from ..errors import MinirunError


class SubstitutionError(MinirunError):
    pass


def process_word(text, env, escape="\\"):
    """*text* as one word: variables substituted, quotes and escapes removed."""
    return "".join(_Lexer(text, env, escape).words(split=False)[0] or [""])


def process_words(text, env, escape="\\"):
    """*text* split on unquoted whitespace into words, each processed as process_word."""
    return ["".join(w) for w in _Lexer(text, env, escape).words(split=True)]


class _Lexer:
    def __init__(self, text, env, escape):
        self.text, self.env, self.escape = text, env, escape
        self.i = 0

    def peek(self):
        return self.text[self.i] if self.i < len(self.text) else ""

    def take(self):
        c = self.peek()
        self.i += 1
        return c

    def words(self, split, stop=""):
        """[[pieces of a word], …] up to the end (or to *stop*, consumed)."""
        words, current, started = [], [], False
        while self.i < len(self.text):
            c = self.peek()
            if stop and c == stop:
                self.i += 1
                break
            if split and c.isspace():
                self.i += 1
                if started:
                    words.append(current)
                    current, started = [], False
                continue
            started = True
            if c == self.escape:
                self.i += 1
                if self.i < len(self.text):
                    current.append(self.take())
                else:
                    current.append(c)          # a trailing escape stays
            elif c == "'":
                self.i += 1
                end = self.text.find("'", self.i)
                if end < 0:
                    raise SubstitutionError(f"unexpected end of statement while looking for "
                                            f"matching single-quote in {self.text!r}")
                current.append(self.text[self.i:end])
                self.i = end + 1
            elif c == '"':
                self.i += 1
                current.append(self.double_quoted())
            elif c == "$":
                current.append(self.variable())
            else:
                current.append(self.take())
        else:
            if stop:
                raise SubstitutionError(f"missing '{stop}' in {self.text!r}")
        if started or not split:
            words.append(current)
        return words

    def double_quoted(self):
        out = []
        while True:
            if self.i >= len(self.text):
                raise SubstitutionError(f"unexpected end of statement while looking for "
                                        f"matching double-quote in {self.text!r}")
            c = self.take()
            if c == '"':
                return "".join(out)
            if c == self.escape and self.peek() in ('"', "$", self.escape) and self.peek():
                out.append(self.take())
            elif c == "$":
                self.i -= 1
                out.append(self.variable())
            else:
                out.append(c)

    def variable(self):
        self.i += 1                                  # the "$"
        c = self.peek()
        if c == "{":
            self.i += 1
            return self.braced()
        name = self.name()
        if not name:
            return "$"                               # a lone "$" is itself
        return self.env.get(name, "")

    def name(self):
        start = self.i
        if self.peek().isdigit():                    # $1 …: positional, always empty
            self.i += 1
            return self.text[start:self.i]
        while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
            self.i += 1
        return self.text[start:self.i]

    def braced(self):
        name = self.name()
        if not name:
            raise SubstitutionError(f"bad substitution: {self.text!r}")
        c = self.take()
        if c == "}":
            return self.env.get(name, "")
        colon = c == ":"
        if colon:
            c = self.take()
        if c not in ("-", "+", "?"):
            raise SubstitutionError(f"unsupported modifier ({':' if colon else ''}{c}) in "
                                    f"substitution: {self.text!r}")
        word = "".join("".join(w) for w in self.words(split=False, stop="}"))
        value = self.env.get(name)
        unset = value is None or (colon and value == "")
        if c == "-":
            return word if unset else value
        if c == "+":
            return "" if unset else word
        if unset:
            raise SubstitutionError(f"{name}: {word or 'is not allowed to be empty'}")
        return value
