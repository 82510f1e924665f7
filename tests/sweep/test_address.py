"""An `--address` (or RAY_ADDRESS) where no Ray cluster answers is refused in one line within
seconds, before Ray is asked to connect (it would retry for minutes)."""

from __future__ import annotations

import socket
import time

import pytest

from ablate.errors import UserError
from ablate.sweep.address import check_address, host_port
from ablate.sweep.workers import init_ray


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_host_and_port_of_each_address_form() -> None:
    assert host_port("127.0.0.1:6380") == ("127.0.0.1", 6380)
    assert host_port("ray://head.example:10001") == ("head.example", 10001)
    assert host_port("auto") is None and host_port("local") is None
    assert host_port("head") is None  # no port: left to Ray


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


def test_an_address_that_accepts_a_connection_passes() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        check_address(f"127.0.0.1:{server.getsockname()[1]}")
    check_address("auto")
