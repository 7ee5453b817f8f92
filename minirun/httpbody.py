"""Request bodies read as streams: chunked (Transfer-Encoding) or of a known length.

Shared by minirund (``docker cp`` into a container, image load and import) and
the registry (``docker push``): clients stream these bodies, often with no
length known in advance, and they can be larger than anything kept in memory.
"""


class ChunkedReader:
    """The body of a request sent with Transfer-Encoding: chunked."""

    def __init__(self, raw):
        self.raw, self.left, self.done = raw, 0, False

    def read(self, n=-1):
        if self.done:
            return b""
        if self.left == 0:
            try:
                size = int(self.raw.readline(64).split(b";")[0].strip() or b"0", 16)
            except ValueError:
                raise OSError("malformed chunked request body") from None
            if size == 0:
                while self.raw.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass                           # trailers
                self.done = True
                return b""
            self.left = size
        n = self.left if n is None or n < 0 else n
        data = self.raw.read(min(n, self.left))
        if not data:
            raise OSError("the request body ended early")
        self.left -= len(data)
        if self.left == 0:
            self.raw.readline(64)                  # the CRLF after each chunk
        return data


class LengthReader:
    """A body of Content-Length bytes."""

    def __init__(self, raw, length):
        self.raw, self.left = raw, length
        self.done = length == 0

    def read(self, n=-1):
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.raw.read(n) if n else b""
        self.left -= len(data)
        self.done = self.left == 0
        if n and not data:
            raise OSError("the request body ended early")
        return data


def body_reader(headers, raw):
    """The body of a request with these *headers*, from the stream *raw*; None when the
    Content-Length is not a number."""
    if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
        return ChunkedReader(raw)
    length = headers.get("Content-Length") or "0"
    if not length.isdigit():
        return None
    return LengthReader(raw, int(length))
