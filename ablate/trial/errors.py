"""What the trial path raises about one dialogue (not the user's settings: those are
`ablate.errors.UserError`)."""

from __future__ import annotations


class EncodeError(ValueError):
    """A dialogue that cannot be encoded; `kind` is what a trial counts it under."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
