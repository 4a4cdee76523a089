"""Raw HTTP/2 on a plain socket, enough to play a misbehaving gRPC client (standard library only).

The attacks of the abuse tests and of tests/abuse/ need what no well-behaved client library does:
never acknowledging SETTINGS, opening more streams than MAX_CONCURRENT_STREAMS allows, leaving a
message half-sent, resetting streams as fast as they open. RFC 9113 frames and RFC 7541 HPACK
"literal header field without indexing, new name" (no Huffman, no dynamic table), nothing more.
Every socket operation here is bounded by the socket's timeout.
"""
import socket
import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
CANCEL = 0x8
SETTINGS_INITIAL_WINDOW_SIZE = 0x4


def frame(ftype, flags, stream, payload=b""):
    """One frame: 9-byte header + payload."""
    n = len(payload)
    return struct.pack(">BHBBI", (n >> 16) & 0xFF, n & 0xFFFF, ftype, flags, stream & 0x7FFFFFFF) + payload


def _hpack_int(value, prefix_bits, first_byte_flags=0):
    """RFC 7541 5.1 integer with an N-bit prefix."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first_byte_flags | value])
    out = bytearray([first_byte_flags | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_literal(headers):
    """[(name, value), ...] -> a header block of literals without indexing (new names)."""
    out = bytearray()
    for name, value in headers:
        n, v = name.encode(), value.encode()
        out += b"\x00" + _hpack_int(len(n), 7) + n + _hpack_int(len(v), 7) + v
    return bytes(out)


def grpc_headers(path, authority="127.0.0.1", extra=()):
    """The request headers of a gRPC call to path (no authorization unless given in extra)."""
    return hpack_literal([(":method", "POST"), (":scheme", "http"), (":path", path),
                          (":authority", authority), ("content-type", "application/grpc"),
                          ("te", "trailers")] + list(extra))


def grpc_message_prefix(length):
    """The 5-byte gRPC message prefix (uncompressed) announcing length bytes."""
    return struct.pack(">BI", 0, length)


class Conn:
    """One client HTTP/2 connection. ack_settings=False never acknowledges the server's SETTINGS,
    so in gRPC core 1.51 its advertised MAX_CONCURRENT_STREAMS never takes effect (it counts only
    acknowledged settings)."""

    def __init__(self, host, port, timeout=5.0, ack_settings=True, window=None):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.next_stream = 1
        settings = b""
        if window is not None:
            settings = struct.pack(">HI", SETTINGS_INITIAL_WINDOW_SIZE, window)
        self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0, settings))
        self.ack_settings = ack_settings
        self._buf = b""
        self.goaway = False
        self.rst = 0

    def new_stream(self):
        sid = self.next_stream
        self.next_stream += 2
        return sid

    def send(self, data):
        self.sock.sendall(data)

    def poll(self):
        """Reads what the server sent so far without blocking; acknowledges its SETTINGS (if
        wanted) and PINGs. Returns False once the server closed the connection. The socket's
        timeout is restored after (setblocking(True) would drop it, and a later send to a server
        that stopped reading would then wait forever)."""
        timeout = self.sock.gettimeout()
        self.sock.setblocking(False)
        try:
            while True:
                try:
                    chunk = self.sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    return False
                if not chunk:
                    return False
                self._buf += chunk
        finally:
            self.sock.settimeout(timeout)
        out = b""
        # An offset, one slice at the end: cutting the buffer per frame made a poll quadratic in
        # what it read (tens of thousands of RST_STREAM frames under a flood).
        buf, off = self._buf, 0
        while len(buf) - off >= 9:
            n = int.from_bytes(buf[off:off + 3], "big")
            if len(buf) - off < 9 + n:
                break
            ftype, flags = buf[off + 3], buf[off + 4]
            payload = buf[off + 9:off + 9 + n]
            off += 9 + n
            if ftype == SETTINGS and not flags & ACK and self.ack_settings:
                out += frame(SETTINGS, ACK, 0)
            elif ftype == PING and not flags & ACK:
                out += frame(PING, ACK, 0, payload)
            elif ftype == GOAWAY:
                self.goaway = True
            elif ftype == RST_STREAM:
                self.rst += 1
        self._buf = buf[off:]
        if out:
            try:
                self.sock.sendall(out)
            except OSError:
                return False
        return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
