"""A Ray cluster address answers before the driver connects to it.

`ray.init(address="HOST:PORT")` with nothing listening there retries for minutes, printing GCS
connection warnings; a TCP connect with a few seconds' timeout tells the same in one line.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from ablate.errors import UserError

#: How long the driver waits for the cluster's head to accept a TCP connection.
CONNECT_SECONDS = 5.0
#: Addresses that name no host: `auto` (the cluster of this machine's last `ray start`, which
#: Ray looks up itself) and `local` (a new Ray of the driver's own).
NO_HOST = ("auto", "local")


def host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of `HOST:PORT` or `ray://HOST:PORT` (Ray client); None for `auto`, `local`
    or an address without a port (left to Ray)."""
    if address in NO_HOST:
        return None
    parts = urlsplit(address if "://" in address else f"gcs://{address}")
    try:
        port = parts.port
    except ValueError:
        return None
    return (parts.hostname, port) if parts.hostname and port else None


def check_address(address: str, given_by: str = "--address") -> None:
    """Refuse an address whose host does not accept a TCP connection within CONNECT_SECONDS;
    `given_by`: where the address came from (`--address` or `RAY_ADDRESS`)."""
    target = host_port(address)
    if target is None:
        return
    try:
        socket.create_connection(target, timeout=CONNECT_SECONDS).close()
    except OSError as err:
        reason = type(err).__name__ if isinstance(err, TimeoutError) else err.strerror or err
        raise UserError(
            f"no Ray cluster answers at {address} ({reason}); check `ray status` on the "
            f"cluster's head node, and the {given_by} given"
        ) from None
