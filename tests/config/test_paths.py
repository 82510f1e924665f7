"""`redact`: passwords leave URLs and driver messages, nothing else in them changes."""

from __future__ import annotations

import pytest

from ablate.config import redact
from ablate.study.storage import unreachable


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("postgresql://u:secret@h:1/x", "postgresql://u:***@h:1/x"),
        ("postgresql://u:p@ss@h/x", "postgresql://u:***@h/x"),  # an @ in the password
        ("postgresql://u@h/x", "postgresql://u@h/x"),  # no password
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),  # no user: a port is no password
        ("sqlite:////tmp/s.db", "sqlite:////tmp/s.db"),
        (
            "postgresql://u:secret@h:1/x?password=secret2",
            "postgresql://u:***@h:1/x?password=***",
        ),
        (
            "postgresql://h/x?sslmode=off&password=secret2&user=u",
            "postgresql://h/x?sslmode=off&password=***&user=u",
        ),
    ],
)
def test_urls_lose_their_password_field_and_query_value(given: str, shown: str) -> None:
    assert redact(given) == shown


def test_a_driver_message_keeps_its_words_and_loses_echoed_passwords() -> None:
    # A one-letter password: its letters elsewhere in the message stay as they are.
    message = (
        '(psycopg.OperationalError) connection failed: connection to server at "127.0.0.1", '
        "port 1 failed: Connection refused"
    )
    assert redact(message) == message
    echoed = (
        "invalid dsn: host=h port=1 user=u password='se cr\\'et' dbname=x; "
        "also tried postgresql://u:s@h:1/x and password=s2"
    )
    assert redact(echoed) == (
        "invalid dsn: host=h port=1 user=u password=*** dbname=x; "
        "also tried postgresql://u:***@h:1/x and password=***"
    )


def test_an_unreachable_storage_names_the_driver_error_unstarred() -> None:
    url = "postgresql://u:s@127.0.0.1:1/x?password=secret2"
    err = RuntimeError(
        'connection to server at "127.0.0.1", port 1 failed: Connection refused '
        f"(url {url}, dsn password=secret2)"
    )
    line = unreachable(url, err)
    assert "secret2" not in line and ":s@" not in line
    assert 'connection to server at "127.0.0.1", port 1 failed: Connection refused' in line
    assert "postgresql://u:***@127.0.0.1:1/x?password=***" in line
