"""WebSocket (RFC 6455), the little of it ``GET /containers/{id}/attach/ws`` needs.

A browser cannot take over a raw TCP connection the way ``docker attach`` does (the
``Upgrade: tcp`` of POST /attach), but it can open a WebSocket: an HTTP request answered
with 101 and a key derived from the client's, after which both sides send *frames* — a
header (final bit, opcode, length) and a payload. Frames from the client are masked with
a 4-byte key (so that a proxy cannot be fooled into caching them); the server's are not.
dockerd sends a container's output as binary frames (text frames before API 1.28),
never multiplexed, and takes the client's frames as the container's input.
"""
import base64
import binascii
import hashlib
import struct

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"     # RFC 6455 1.3: the same for everyone
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0, 1, 2, 8, 9, 10
MAX_PAYLOAD = 16 << 20          # a client frame larger than this ends its input


class HandshakeError(ValueError):
    pass


def accept(headers):
    """Sec-WebSocket-Accept for a client's upgrade request (HandshakeError if it is not one)."""
    if (headers.get("Upgrade") or "").lower() != "websocket":
        raise HandshakeError("not a WebSocket upgrade (Upgrade: websocket is missing)")
    key = (headers.get("Sec-WebSocket-Key") or "").strip()
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError
    except (ValueError, binascii.Error):
        raise HandshakeError("Sec-WebSocket-Key: 16 bytes in base64 expected") from None
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def frame(payload, opcode=BINARY):
    """One final, unmasked frame (what a server sends)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


def close_frame(code=1000):
    return frame(struct.pack("!H", code), CLOSE)


class FrameReader:
    """The client's frames as a socket's recv(): the payloads of its data frames, then b""
    once it closes (a close frame, the end of the connection, or a frame that breaks the
    rules: unmasked, or larger than MAX_PAYLOAD). Pings go unanswered: the output
    thread owns the sending side."""

    def __init__(self, sock, first=b""):
        self.sock, self.buf, self.closed = sock, bytearray(first), False

    def _fill(self, n):
        while len(self.buf) < n:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.buf += data

    def recv(self, _size=None):
        while not self.closed:
            try:
                payload, opcode = self._next()
            except EOFError:
                payload, opcode = b"", CLOSE
            if opcode == CLOSE:
                self.closed = True
            elif opcode in (CONTINUATION, TEXT, BINARY) and payload:
                return payload
        return b""

    def _next(self):
        self._fill(2)
        b0, b1 = self.buf[0], self.buf[1]
        length, offset = b1 & 0x7F, 2
        if length == 126:
            self._fill(4)
            length, offset = struct.unpack_from("!H", self.buf, 2)[0], 4
        elif length == 127:
            self._fill(10)
            length, offset = struct.unpack_from("!Q", self.buf, 2)[0], 10
        if not b1 & 0x80 or length > MAX_PAYLOAD:
            return b"", CLOSE
        self._fill(offset + 4 + length)
        mask = self.buf[offset:offset + 4]
        data = self.buf[offset + 4:offset + 4 + length]
        del self.buf[:offset + 4 + length]
        key = (bytes(mask) * (length // 4 + 1))[:length]
        payload = (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(
            length, "big")
        return payload, b0 & 0x0F
