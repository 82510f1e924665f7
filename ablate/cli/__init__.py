"""The `ablate` command. Only re-exports: the parser (`parser`), the commands (`commands`),
`main` (`main`)."""

from ablate.cli.main import main
from ablate.cli.parser import build_parser

__all__ = ["build_parser", "main"]
