"""Factory config files: ``scenarios/factory/*.yaml`` (or ``.yml`` / ``.json``).

A bare name (``toy_day``) resolves to a file of that stem in ``FACTORY_DIR``. A broken file
raises :class:`FactoryConfigError` whose ``violations`` list every problem with its path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine import paths
from engine.factory.models import FactoryConfig, Job, Violation, factory_violations

DEFAULT_FACTORY = "toy_day"
SUFFIXES = (".yaml", ".yml", ".json")
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_NODES = 1_000_000
"""Most values (mappings, lists, scalars) a config may hold once YAML's aliases are expanded:
a 1 KB file of nested aliases (``&a [*b, *b, ...]``) stands for 10^8 steps, which validation
would walk for minutes and gigabytes; a self-referencing alias for ever."""


class FactoryConfigError(ValueError):
    """A factory config that cannot be used; ``str()`` names the file and each bad field."""

    def __init__(self, source: str, violations: list[Violation]) -> None:
        self.source = source
        self.violations = violations
        lines = "\n".join(f"  {v}" for v in violations)
        count = f"{len(violations)} problem" + ("" if len(violations) == 1 else "s")
        super().__init__(f"{source}: invalid factory config ({count})\n{lines}")


def factory_dir() -> Path:
    return paths.FACTORY_DIR


def list_factories() -> list[str]:
    """Names of the factory configs that ship with the project (file stems, sorted)."""
    directory = factory_dir()
    if not directory.is_dir():
        return []
    return sorted({p.stem for p in directory.iterdir() if p.suffix in SUFFIXES and p.is_file()})


def resolve(path_or_name: str | Path) -> Path:
    """A path as given, or ``FACTORY_DIR/<name>.<yaml|yml|json>`` for a bare name."""
    candidate = Path(path_or_name)
    if candidate.exists() or candidate.suffix in SUFFIXES or len(candidate.parts) > 1:
        return candidate
    for suffix in SUFFIXES:
        path = factory_dir() / f"{path_or_name}{suffix}"
        if path.exists():
            return path
    return candidate


def read_data(path: Path) -> Any:
    """Parse the file (YAML or JSON by suffix) into plain data; errors name the file."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        names = ", ".join(list_factories()) or "none"
        raise FactoryConfigError(
            str(path), [Violation("(file)", f"cannot read: {exc.strerror} (known: {names})")]
        ) from None
    if size > MAX_FILE_BYTES:
        raise FactoryConfigError(
            str(path), [Violation("(file)", f"{size} bytes is over the {MAX_FILE_BYTES} limit")]
        )
    try:
        text = paths.read_small_file(path, MAX_FILE_BYTES).decode("utf-8", errors="replace")
    except OSError as exc:  # a FIFO or a device in its place: not read
        raise FactoryConfigError(
            str(path), [Violation("(file)", f"cannot read: {exc.strerror or exc}")]
        ) from None
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise FactoryConfigError(
                str(path), [Violation("(file)", f"not valid JSON: {exc}")]
            ) from None
    import yaml

    # libyaml's loader when PyYAML has it: the same safe constructors, a tenth of the time
    # (about 8 ms of a `brief` on the toy world).
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise FactoryConfigError(
            str(path), [Violation("(file)", f"not valid YAML{where}: {problem}")]
        ) from None
    _bounded(data, str(path))
    return data


def _bounded(data: Any, source: str) -> None:
    """FactoryConfigError when ``data`` holds more than ``MAX_NODES`` values, aliases expanded
    (counted without building anything, and stopping at the bound)."""
    count, stack = 0, [data]
    while stack:
        node = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise FactoryConfigError(
                source,
                [Violation("(file)", f"more than {MAX_NODES} values once YAML aliases expand")],
            )
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def validate_file(path_or_name: str | Path) -> tuple[FactoryConfig | None, list[Violation]]:
    """(config, []) for a valid file, else (None, every violation)."""
    path = resolve(path_or_name)
    try:
        data = read_data(path)
    except FactoryConfigError as exc:
        return None, exc.violations
    if not isinstance(data, dict):
        return None, [Violation("(root)", "a factory config must be a mapping of fields")]
    violations = factory_violations(data)
    if violations:
        return None, violations
    return FactoryConfig.model_validate(data), []


def load_factory(path_or_name: str | Path | None = None) -> FactoryConfig:
    """Load and validate a factory (default: the toy world)."""
    path = resolve(path_or_name if path_or_name is not None else DEFAULT_FACTORY)
    config, violations = validate_file(path)
    if config is None:
        raise FactoryConfigError(str(path), violations)
    return config


def factory_warnings(factory: FactoryConfig) -> list[str]:
    """Valid but doomed: work that can never fit, or jobs that can never be on time."""
    from engine.factory.futures import critical_path_hours

    out: list[str] = []
    windows = {m.id: m.available_hours for m in factory.machines}
    for j, job in enumerate(factory.jobs):
        for s, step in enumerate(job.steps):
            if step.duration_hours > windows[step.machine_id]:
                out.append(
                    f"jobs[{j}].steps[{s}]: {step.duration_hours}h is longer than "
                    f"{step.machine_id}'s {windows[step.machine_id]}h window; it can never run"
                )
        if job.release_time + critical_path_hours(job) > job.due_time:
            out.append(
                f"jobs[{j}]: {job.id} needs {critical_path_hours(job)}h from release "
                f"{job.release_time}h, past its due time {job.due_time}h; it is always late"
            )
    return out


def summary(factory: FactoryConfig) -> str:
    steps = sum(len(j.steps) for j in factory.jobs)
    return (
        f"{factory.name}: {len(factory.machines)} machines, {len(factory.jobs)} jobs, "
        f"{steps} steps, horizon {factory.time_horizon}h"
    )


def job_summary(job: Job) -> str:
    route = " -> ".join(f"{s.machine_id} {s.duration_hours}h" for s in job.steps)
    return f"{job.id} ({job.name}, due {job.due_time}h): {route}"
