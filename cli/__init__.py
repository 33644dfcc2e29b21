"""The `fares` command and its terminal rendering (`fares.cli:main` is the console script)."""

from fares.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
