"""An `--address` (or RAY_ADDRESS) where no Ray cluster answers is refused in one line within
seconds, before Ray is asked to connect (it would retry for minutes, or raise a traceback): an
HTTP URL, a port nothing listens on, a server that is no gRPC server (PostgreSQL, Redis, HTTP/1),
an HTTP/2 proxy's 404, a gRPC server without Ray's GCS service. A real Ray head passes."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from clusters_for_tests import empty_head_cluster
from conftest import free_port

from ablate.errors import UserError
from ablate.sweep import address as address_module
from ablate.sweep import workers
from ablate.sweep.address import GCS_METHOD, check_address, host_port
from ablate.sweep.workers import init_ray

NOT_HTTP2 = (
    "something accepts TCP there but does not answer HTTP/2, as a Ray GCS (a gRPC server) does"
)
GCS_HINT = (
    "a cluster's GCS address is HEAD:PORT, PORT the head's `ray start --head --port`, 6379 by "
    "default"
)
#: An HTTP/2 server's SETTINGS frame, its ACK of the client's, then its reply on stream 1.
SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00" + b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"


def headers(block: bytes) -> bytes:
    """A HEADERS frame on stream 1 that ends the stream (END_STREAM | END_HEADERS)."""
    return len(block).to_bytes(3, "big") + b"\x01\x05\x00\x00\x00\x01" + block


@contextlib.contextmanager
def replying(reply: bytes | None) -> Iterator[str]:
    """A TCP server on loopback that reads what comes, then sends `reply` and closes (None: says
    nothing and keeps the connection open until the server ends)."""
    server = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = server.accept()
            with conn:
                conn.recv(4096)
                if reply is None:
                    done.wait(10)
                else:
                    conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        done.set()
        server.close()
        thread.join(5)


@contextlib.contextmanager
def grpc_server(methods: dict[str, Any]) -> Iterator[str]:
    """A gRPC server on loopback with the unary `methods` (path: handler) and no others."""
    server = grpc.server(futures.ThreadPoolExecutor(2))
    handlers = {
        path.rsplit("/", 1)[1]: grpc.unary_unary_rpc_method_handler(fn)
        for path, fn in methods.items()
    }
    if methods:
        service = GCS_METHOD.strip("/").rsplit("/", 1)[0]
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(service, handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def test_the_host_and_port_of_each_address_form() -> None:
    assert host_port("127.0.0.1:6380") == ("127.0.0.1", 6380)
    assert host_port("ray://head.example:10001") == ("head.example", 10001)
    assert host_port("auto") is None and host_port("local") is None
    # no port, an empty host or port, a port out of range, stray spaces: one line, not Ray's
    # traceback or minutes of retries
    for bad in ("head", "127.0.0.1", "127.0.0.1:", ":6379", "127.0.0.1:99999", "127.0.0.1:6379 "):
        with pytest.raises(ValueError):
            host_port(bad)
        with pytest.raises(UserError, match=r"is not a Ray address: give HEAD:PORT"):
            check_address(bad)


def test_an_address_nobody_listens_on_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    address = f"127.0.0.1:{closed_port()}"
    start = time.perf_counter()
    with pytest.raises(UserError) as err:
        init_ray(address)
    assert time.perf_counter() - start < 6
    assert str(err.value) == (
        f"no Ray cluster answers at {address} (Connection refused); check `ray status` on the "
        "cluster's head node, and the --address given"
    )
    monkeypatch.setenv("RAY_ADDRESS", f"ray://{address}")
    with pytest.raises(
        UserError, match=r"answers at ray://127\.0\.0\.1:\d+ .* the RAY_ADDRESS given"
    ):
        init_ray(None)


def test_an_http_url_is_the_job_servers_and_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's `ray job submit --address http://HEAD:8265`, given to ablate instead."""
    with pytest.raises(UserError) as err:
        init_ray("http://127.0.0.1:8265")
    assert str(err.value) == (
        "--address http://127.0.0.1:8265 is an HTTP URL, the form `ray job submit --address` "
        "takes (the dashboard's job server); --address takes the cluster's GCS address, "
        "HEAD:6379 (the head's `ray start --head --port`), or `auto` on a node of the cluster"
    )
    monkeypatch.setenv("RAY_ADDRESS", "HTTPS://head.example")  # no port: still a URL
    with pytest.raises(UserError, match=r"^RAY_ADDRESS HTTPS://head\.example is an HTTP URL"):
        init_ray(None)


@pytest.mark.parametrize(
    "reply",
    [
        b"-ERR unknown command 'PRI', with args beginning with: \r\n",  # Redis
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",  # an HTTP/1 server
        b"",  # PostgreSQL: closes the connection
    ],
    ids=["redis", "http1", "closes"],
)
def test_a_server_that_is_not_http2_is_refused(reply: bytes) -> None:
    with replying(reply) as address, pytest.raises(UserError) as err:
        check_address(address)
    assert str(err.value) == (
        f"no Ray cluster answers at {address}: {NOT_HTTP2}; check the --address given: {GCS_HINT}"
    )


def test_a_silent_server_is_refused_after_the_probe_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(address_module, "PROBE_SECONDS", 0.5)
    start = time.perf_counter()
    with replying(None) as address, pytest.raises(UserError, match=re.escape(NOT_HTTP2)):
        check_address(address, "RAY_ADDRESS")
    assert 0.5 <= time.perf_counter() - start < 3


@pytest.mark.parametrize(
    "block",
    [b"\x8d", b"\x48\x83\x68\x0d\x7f", b"\x08\x03404"],
    ids=["indexed", "huffman", "literal"],
)
def test_an_http2_proxys_404_is_refused(block: bytes) -> None:
    """A proxy that speaks HTTP/2 but answers a gRPC call with 404 (Ray would log 404s for 20 s,
    then raise a ConnectionError); `:status` HPACK-coded as a static entry, a Huffman-coded
    literal, a plain literal."""
    with replying(SETTINGS + headers(block)) as address, pytest.raises(UserError) as err:
        check_address(address)
    assert str(err.value) == (
        f"no Ray cluster answers at {address}: something answers HTTP/2 there, but with status "
        f"404 to a gRPC call, which no gRPC server does (a proxy?); check the --address given: "
        f"{GCS_HINT}"
    )


def test_a_grpc_server_without_the_gcs_service_is_refused_as_a_gcs() -> None:
    """Another gRPC port (a raylet's, the Ray client's) answers UNIMPLEMENTED; as a Ray client
    address (`ray://`) the same server passes."""
    with grpc_server({}) as address:
        with pytest.raises(UserError, match="a gRPC server answers there, but without Ray's GCS"):
            check_address(address)
        check_address(f"ray://{address}")


def test_a_grpc_server_with_the_gcs_method_passes() -> None:
    with grpc_server({GCS_METHOD: lambda request, context: b""}) as address:
        check_address(address)
    check_address("auto")


@pytest.mark.parametrize("port", [6379, 5432], ids=["redis", "postgresql"])
def test_the_local_redis_and_postgresql_are_refused(port: int) -> None:
    """The review's case: Ray retried for over 12 minutes at PostgreSQL's port."""
    if not listening(port):
        pytest.skip(f"nothing listens on 127.0.0.1:{port} here")
    start = time.perf_counter()
    with pytest.raises(UserError, match=re.escape(NOT_HTTP2)):
        check_address(f"127.0.0.1:{port}")
    assert time.perf_counter() - start < 1


def test_rays_own_connection_error_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Something that answers the probe as a GCS but is none: Ray's ConnectionError, one line."""
    import ray

    def refuse(**kwargs: Any) -> None:
        raise ConnectionError("Failed to connect to Ray cluster at 127.0.0.1:1.\nDetails")

    monkeypatch.setattr(workers, "check_address", lambda address, given_by: None)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refuse)
    with pytest.raises(UserError) as err:
        init_ray("127.0.0.1:1")
    assert str(err.value) == (
        "no Ray cluster answers at 127.0.0.1:1 (Ray: Failed to connect to Ray cluster at "
        "127.0.0.1:1.); check `ray status` on the cluster's head node, and the --address given"
    )


@pytest.mark.slow
@pytest.mark.cluster
def test_a_real_ray_head_passes_and_its_other_ports_do_not() -> None:
    """A head started on an explicit GCS port answers the probe; its raylet's port does not."""
    port = free_port()
    cluster = empty_head_cluster(gcs_server_port=port)
    try:
        start = time.perf_counter()
        check_address(f"127.0.0.1:{port}")
        check_address(cluster.address)
        assert time.perf_counter() - start < 1
        raylet = f"127.0.0.1:{cluster.head_node.node_manager_port}"
        with pytest.raises(UserError, match="a gRPC server answers there, but without Ray's GCS"):
            check_address(raylet)
    finally:
        cluster.shutdown()


def test_with_tls_only_the_tcp_connection_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray's gRPC over TLS (RAY_USE_TLS) answers no plain HTTP/2: not probed."""
    monkeypatch.setenv("RAY_USE_TLS", "1")
    with replying(b"") as address:
        check_address(address)
