"""A Ray cluster address answers as a Ray cluster before the driver connects to it.

`ray.init(address="HOST:PORT")` retries for minutes, printing GCS connection warnings, when
nothing listens there, and for as long (SIGTERM does not stop it) when something else does
(PostgreSQL on 5432, Redis on 6379); an `http://` URL (the dashboard's, which `ray job submit`
takes) ends in Ray's ValueError traceback. Checked here in a few seconds, refused in one line:

- an HTTP URL;
- a host that does not accept a TCP connection within CONNECT_SECONDS;
- a server that does not answer HTTP/2 within PROBE_SECONDS. A Ray GCS is a gRPC server, and
  a gRPC server answers the HTTP/2 client preface with its SETTINGS frame; PostgreSQL closes
  the connection, Redis replies `-ERR`, an HTTP/1 server `HTTP/1.1 400`;
- an HTTP/2 server whose reply to a gRPC call is not HTTP status 200 (a proxy's 404: gRPC
  servers answer every call with 200, the call's own status in `grpc-status`), or one without
  Ray's GCS service (`grpc-status` 12, UNIMPLEMENTED: another of Ray's ports, such as the
  raylet's or the Ray client's). The call is GetClusterId with an empty request message: the
  first call every Ray driver makes, a read.

With RAY_USE_TLS set (Ray's gRPC over TLS, no plain HTTP/2) only the first two are checked.
"""

from __future__ import annotations

import os
import socket
import time
from urllib.parse import urlsplit

from ablate.errors import UserError

#: How long the driver waits for the cluster's head to accept a TCP connection.
CONNECT_SECONDS = 5.0
#: How long the driver waits for the head's answer to one gRPC call (a GCS answers in ms).
PROBE_SECONDS = 3.0
#: Addresses that name no host: `auto` (the cluster of this machine's last `ray start`, which
#: Ray looks up itself) and `local` (a new Ray of the driver's own).
NO_HOST = ("auto", "local")
#: The gRPC method the probe calls: the one a Ray driver calls first on the GCS.
GCS_METHOD = "/ray.rpc.NodeInfoGcsService/GetClusterId"
#: gRPC's status code for "no such method" (so no Ray GCS).
UNIMPLEMENTED = "12"
#: HTTP/2 frame types (RFC 9113 section 6) and flags the probe reads.
DATA, HEADERS, RST_STREAM, SETTINGS, GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x7
END_STREAM, END_HEADERS, PADDED, PRIORITY = 0x1, 0x4, 0x8, 0x20
#: HPACK static table (RFC 7541 appendix A): the `:status` entries (8-14) and the names a
#: gRPC reply uses; any other index reads as an unnamed field.
STATUS_ENTRIES = {8: "200", 9: "204", 10: "206", 11: "304", 12: "400", 13: "404", 14: "500"}
STATIC_NAMES = {**dict.fromkeys(STATUS_ENTRIES, ":status"), 31: "content-type"}
#: HPACK Huffman codes of the digits, all a status has (RFC 7541 appendix B).
HUFFMAN_DIGITS = {
    **{f"{i:05b}": str(i) for i in range(3)},
    **{f"{0b011001 + i - 3:06b}": str(i) for i in range(3, 10)},
}
#: Where to look when a port answers as no Ray cluster does.
HINTS = {
    "gcs": "a cluster's GCS address is HEAD:PORT, PORT the head's `ray start --head --port`, "
    "6379 by default",
    "ray": "the Ray client's address is ray://HEAD:PORT, PORT the head's `ray start "
    "--ray-client-server-port`, 10001 by default",
}


def host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of `HOST:PORT` or `ray://HOST:PORT` (Ray client); None for `auto` and
    `local`. Anything else (no port, an empty host, a port past 65535, stray spaces) raises
    ValueError: Ray answered those with a traceback or minutes of retries."""
    if address in NO_HOST:
        return None
    parts = urlsplit(address if "://" in address else f"gcs://{address}")
    port = parts.port  # (ValueError past 65535 or not a number)
    if parts.scheme == "ray" and port is None:
        port = 10001  # Ray client's default port, as `ray.init("ray://HEAD")` takes it
    if address != address.strip() or not parts.hostname or not port:
        raise ValueError(address)
    return parts.hostname, port


def check_address(address: str, given_by: str = "--address") -> None:
    """Refuse an address where no Ray cluster answers (see the module's docstring); `given_by`:
    where the address came from (`--address` or `RAY_ADDRESS`)."""
    if urlsplit(address).scheme.lower() in ("http", "https"):
        raise UserError(
            f"{given_by} {address} is an HTTP URL, the form `ray job submit --address` takes "
            f"(the dashboard's job server); {given_by} takes the cluster's GCS address, "
            "HEAD:6379 (the head's `ray start --head --port`), or `auto` on a node of the cluster"
        )
    try:
        target = host_port(address)
    except ValueError:
        raise UserError(
            f"{given_by} {address!r} is not a Ray address: give HEAD:PORT (the head's GCS port, "
            "6379 unless its `ray start --head --port` says otherwise), ray://HEAD:10001 for "
            "Ray's client, or `auto` on a node of the cluster"
        ) from None
    if target is None:
        return
    try:
        sock = socket.create_connection(target, timeout=CONNECT_SECONDS)
    except OSError as err:
        reason = type(err).__name__ if isinstance(err, TimeoutError) else err.strerror or err
        raise UserError(
            f"no Ray cluster answers at {address} ({reason}); check `ray status` on the "
            f"cluster's head node, and the {given_by} given"
        ) from None
    client = address.startswith("ray://")
    with sock:  # (a cluster with TLS, RAY_USE_TLS, speaks no plain HTTP/2: not probed)
        found = None if use_tls() else not_ray(sock, f"{target[0]}:{target[1]}", client)
    if found:
        raise UserError(
            f"no Ray cluster answers at {address}: {found}; check the {given_by} given: "
            f"{HINTS['ray' if client else 'gcs']}"
        )


def not_ray(sock: socket.socket, authority: str, client: bool = False) -> str | None:
    """What the server on `sock` answered instead of what a Ray GCS (or, `client`, the Ray
    client's server) answers to one gRPC call; None when it answered as one (or could not be
    told apart from one)."""
    try:
        sock.sendall(_grpc_call(authority))
        frames = _reply(sock, time.monotonic() + PROBE_SECONDS)
    except OSError:  # reset by the server
        frames = []
    if not frames or frames[0][0] != SETTINGS:
        return (
            "something accepts TCP there but does not answer HTTP/2, as a Ray GCS (a gRPC "
            "server) does"
        )
    fields = _header_fields([_block(f, p) for t, f, s, p in frames if t == HEADERS and s == 1])
    status = fields.get(":status")
    if status not in (None, "200"):
        return (
            f"something answers HTTP/2 there, but with status {status} to a gRPC call, which "
            "no gRPC server does (a proxy?)"
        )
    if not client and fields.get("grpc-status") == UNIMPLEMENTED:
        return "a gRPC server answers there, but without Ray's GCS service"
    return None


def use_tls() -> bool:
    """Whether Ray's gRPC uses TLS (RAY_USE_TLS, read as Ray reads it)."""
    return os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true")


def _grpc_call(authority: str) -> bytes:
    """The HTTP/2 client preface, an empty SETTINGS frame and a gRPC call of GCS_METHOD on stream
    1: its HEADERS (HPACK literals), then a DATA frame, an empty message, that ends the stream."""
    fields = [(":path", GCS_METHOD), (":authority", authority)]
    fields += [("content-type", "application/grpc"), ("te", "trailers")]
    block = b"\x83\x86"  # the static table's `:method: POST` and `:scheme: http`
    for name, value in fields:  # literal without indexing, new name, no Huffman coding
        block += bytes([0, len(name)]) + name.encode() + bytes([len(value)]) + value.encode()
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    message = b"\x00" + (0).to_bytes(4, "big")  # gRPC: not compressed, 0 bytes long
    call = _frame(HEADERS, END_HEADERS, 1, block) + _frame(DATA, END_STREAM, 1, message)
    return preface + _frame(SETTINGS, 0, 0, b"") + call


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (
        len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload
    )


def _reply(sock: socket.socket, deadline: float) -> list[tuple[int, int, int, bytes]]:
    """The complete frames (type, flags, stream, payload) the server sent until it ended the
    call's stream, the connection or a reply that is not HTTP/2, or until `deadline`."""
    data, frames = b"", []
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except OSError:  # the timeout included
            break
        data += chunk
        frames = _frames(data)
        if not chunk or (len(data) >= 9 and data[3] != SETTINGS):
            break
        if any(
            t in (RST_STREAM, GOAWAY) or (t == HEADERS and f & END_STREAM) for t, f, _, _ in frames
        ):
            break
    return frames


def _frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    frames, at = [], 0
    while at + 9 <= len(data):
        size = int.from_bytes(data[at : at + 3], "big")
        if at + 9 + size > len(data):
            break
        stream = int.from_bytes(data[at + 5 : at + 9], "big") & 0x7FFFFFFF
        frames.append((data[at + 3], data[at + 4], stream, data[at + 9 : at + 9 + size]))
        at += 9 + size
    return frames


def _block(flags: int, payload: bytes) -> bytes:
    """A HEADERS frame's header block, without its padding and priority fields."""
    pad = payload[0] if flags & PADDED and payload else 0
    start = (1 if flags & PADDED else 0) + (5 if flags & PRIORITY else 0)
    return payload[start : len(payload) - pad]


def _header_fields(blocks: list[bytes]) -> dict[str, str]:
    """The fields of HPACK header blocks that decode with the static table, the blocks' own
    dynamic table and Huffman-coded digits; decoding stops at the first that does not."""
    fields: dict[str, str] = {}
    dynamic: list[tuple[str, str | None]] = []
    for block in blocks:
        at = 0
        while at < len(block):
            first = block[at]
            if first & 0x80:  # indexed field
                index, at = _integer(block, at, 7)
                name, value = _entry(index, dynamic)
            elif first & 0xE0 == 0x20:  # dynamic table size update
                _, at = _integer(block, at, 5)
                continue
            else:  # literal: with incremental indexing (01), without or never indexed (000)
                index, at = _integer(block, at, 6 if first & 0x40 else 4)
                name = _entry(index, dynamic)[0] if index else None
                if not index:
                    name, at = _string(block, at)
                value, at = _string(block, at)
                if first & 0x40:
                    dynamic.insert(0, (name or "", value))
            if name is None or value is None:
                return fields
            fields[name] = value
    return fields


def _entry(index: int, dynamic: list[tuple[str, str | None]]) -> tuple[str | None, str | None]:
    if index > 61:
        return dynamic[index - 62] if index - 62 < len(dynamic) else (None, None)
    return STATIC_NAMES.get(index, ""), STATUS_ENTRIES.get(index, "")


def _integer(block: bytes, at: int, prefix: int) -> tuple[int, int]:
    """An HPACK integer with a `prefix`-bit prefix at `at`, and where the next item starts."""
    value, at = block[at] & ((1 << prefix) - 1), at + 1
    if value < (1 << prefix) - 1:
        return value, at
    shift = 0
    while at < len(block):
        value, at, shift = value + ((block[at] & 0x7F) << shift), at + 1, shift + 7
        if not block[at - 1] & 0x80:
            break
    return value, at


def _string(block: bytes, at: int) -> tuple[str | None, int]:
    """An HPACK string at `at` (None: Huffman-coded, and not only digits), and where the next
    item starts."""
    huffman = at < len(block) and block[at] & 0x80
    size, at = _integer(block, at, 7) if at < len(block) else (0, at)
    raw = block[at : at + size]
    if not huffman:
        return raw.decode("latin-1"), at + size
    bits, text = "".join(f"{byte:08b}" for byte in raw), ""
    while len(bits) >= 5 and bits != "1" * len(bits):  # (the padding: at most 7 ones)
        code = bits[:5] if bits[:5] in HUFFMAN_DIGITS else bits[:6]
        if code not in HUFFMAN_DIGITS:
            return None, at + size
        text, bits = text + HUFFMAN_DIGITS[code], bits[len(code) :]
    return text, at + size
