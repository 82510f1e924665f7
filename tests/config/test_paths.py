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
        ("postgresql://u:p%40ss@h/x", "postgresql://u:***@h/x"),  # an encoded @
        # SQLAlchemy's password runs to the `@`: a `/`, `?`, `#`, quote or space is part of it
        ("postgresql://u:pa/ss@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:Zx/9kLeak@h:6590/x", "postgresql://u:***@h:6590/x"),
        ("postgresql://u:pa?ss@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:pa#ss@h/db", "postgresql://u:***@h/db"),
        ('postgresql://u:p"w@h/db', "postgresql://u:***@h/db"),
        ("postgresql://u:it's@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:pa ss@h/db", "postgresql://u:***@h/db"),
        ("postgresql://:pa/ss@h/db", "postgresql://:***@h/db"),  # no user name
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


@pytest.mark.parametrize("password", ["pa/ss", "pa?ss", "pa#ss", 'p"w', "it's", "pa ss", "p@ss"])
def test_a_quoted_url_loses_any_password_and_nothing_else_is_starred(password: str) -> None:
    message = (
        f"no study `s` in postgresql://u:{password}@127.0.0.1:6590/db; start it, "
        "or ask admin@example.com; MLflow at http://127.0.0.1:5000 failed, mail a@b; "
        "http://h:5000/x and c@d"
    )
    assert redact(message) == message.replace(f"u:{password}@", "u:***@")


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
