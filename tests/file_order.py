"""The order test files go to the xdist workers in."""

from __future__ import annotations

SLOWEST_FIRST = (
    "plant/test_evaluation.py",
    "live/test_attacks.py",
    "tickets/test_services.py",
    "plant/test_fleet.py",
    "plant/test_monitor_batch.py",
    "live/test_up.py",
    "live/test_e2e.py",
    "tui/test_tui_live.py",
    "tui/test_tui_factory.py",
    "tickets/test_store_faults.py",
    "tui/test_tui_alarms.py",
    "plant/test_monitor.py",
    "tui/test_tui_demo_tmux.py",
    "tui/test_tui_keys.py",
    "alarms/test_review_restart.py",
)
"""Test files by wall time, slowest first (``pytest --durations=60``, 2026-11-30). xdist
hands whole files to workers in collection order (``--dist loadfile``,
``--no-loadscope-reorder`` in ``pyproject.toml``); its default order, by number of tests,
left the few-test heavy files to the end, run one after another while the other worker idled
(the last 13 % of the tests took a third of the run). Longest first keeps both busy."""
