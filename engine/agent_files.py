"""The agents' files, read and written at the edges (services, CLI, benches), never by an agent.

- ``rules/*.yaml``: the diagnosis rules (``load_rules``), parsed by the pure
  ``engine.agents.diagnosis_rules.rules_from_yaml``;
- the tuning file the review service writes and the monitor and diagnosis services watch
  (``load_tuning`` / ``save_tuning``, atomic);
- the false-positive case file (``FalsePositiveLog``, append-only JSONL).

Every error names the file (and, for rules, the rule id and field), so a bad file fails with a
clear message and exit code 2 at the CLI, or is reported and not applied by a running service.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from engine.agents.diagnosis_rules import Rule, RuleError, merge_rule_sets, rules_from_yaml
from engine.agents.tuning import TuningError, tuning_from_json
from engine.paths import RULES_DIR, open_append, read_small_file
from engine.schemas import Feedback, Tuning

__all__ = [
    "FalsePositiveLog",
    "RuleError",
    "TuningError",
    "load_rule_file",
    "load_rules",
    "load_tuning",
    "save_tuning",
]


def _read(path: Path, error: type[ValueError], what: str) -> str:
    try:
        return read_small_file(path).decode("utf-8")
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read: {exc}") from None


def load_rule_file(path: Path) -> list[Rule]:
    return rules_from_yaml(_read(Path(path), RuleError, "rule file"), str(path))


def load_rules(directory: Path | None = None, files: list[Path] | None = None) -> list[Rule]:
    """Every rule of ``rules/*.yaml`` (or the given files); ids must be unique."""
    paths = files if files is not None else sorted((directory or RULES_DIR).glob("*.yaml"))
    rules = merge_rule_sets([(str(p), load_rule_file(Path(p))) for p in paths])
    if not rules:
        raise RuleError(f"{directory or RULES_DIR}: no rules found (*.yaml)")
    return rules


def load_tuning(path: str | Path) -> Tuning:
    return tuning_from_json(_read(Path(path), TuningError, "tuning file"), str(path))


def save_tuning(tuning: Tuning, path: str | Path) -> None:
    """Write atomically (temp file + rename) so a watching agent never reads half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.unlink(missing_ok=True)  # made afresh (O_EXCL): never through a link left in its place
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(tuning.model_dump_json(indent=2) + "\n")
    os.replace(tmp, path)


class FalsePositiveLog:
    """Append-only JSONL of false-positive closes: the case file for whoever tunes the rules
    and thresholds next. One Feedback per line (with its tuning changes); a line may repeat
    after a crash (at-least-once): readers keep the first of each ``feedback_id``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, feedback: Feedback) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(open_append(self.path), "a", encoding="utf-8") as f:
            f.write(feedback.to_json() + "\n")

    def read(self) -> list[Feedback]:
        if not self.path.exists():
            return []
        seen: dict[str, Feedback] = {}
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                fb = Feedback.model_validate(json.loads(line))
                seen.setdefault(fb.feedback_id, fb)
        return list(seen.values())
