"""CLI subcommands: plant (filled in by its area)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add this area's subcommands to ``controlroom``."""
