"""Small factory configs written inline by the factory tests, one line per job."""

from __future__ import annotations

from typing import Any


def job(job_id: str, name: str, due: int, *steps: tuple[str, int], **fields: Any) -> dict[str, Any]:
    """A job as a config file writes it; ``steps``: ``(machine id, hours)`` in order, named
    ``{job_id}-a``, ``{job_id}-b``, … (the chain of precedence is the config's default)."""
    return {
        "id": job_id,
        "name": name,
        "due_time": due,
        "steps": [
            {"id": f"{job_id}-{chr(ord('a') + k)}", "machine_id": machine, "duration_hours": hours}
            for k, (machine, hours) in enumerate(steps)
        ],
        **fields,
    }
