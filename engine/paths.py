"""Where the project's data lives.

The scenarios, rules and factory configs ship beside the code (the README installs the project
editable), and runtime state goes under ``var/``. ``CONTROLROOM_HOME`` moves the root (tests and
containers), ``CONTROLROOM_VAR`` moves only the runtime state.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(os.environ.get("CONTROLROOM_HOME") or Path(__file__).resolve().parents[1])
SCENARIOS_DIR = ROOT / "scenarios"
FACTORY_DIR = SCENARIOS_DIR / "factory"
RULES_DIR = ROOT / "rules"


def var_dir() -> Path:
    """Runtime state (SQLite store, JSONL logs, dead letters, tuning). Created on first use."""
    from engine.env_file import process_environ  # (light: no pydantic-settings import)

    path = Path(process_environ().get("CONTROLROOM_VAR") or ROOT / "var")
    path.mkdir(parents=True, exist_ok=True)
    return path
