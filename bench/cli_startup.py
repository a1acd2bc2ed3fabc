"""How long ``controlroom`` takes to answer, beside a bare ``python -c pass``.

    python bench/cli_startup.py              # 15 runs of each command, medians
    python bench/cli_startup.py --runs 31 --json

Each figure is the wall time of a whole child process (interpreter start, imports, work, exit),
the median of ``--runs`` runs after one warm-up run, so the file cache is warm as it is for a
user typing the command twice. Targets (issue 15): ``detect --help`` < 200 ms and
``brief --llm off`` on the toy world < 300 ms on the project's 2-core machine. The load average
is printed with the figures: on a busy machine every line moves up together, so compare each
figure with the ``python -c pass`` line measured in the same run, and read the CPU column (user +
system time of the child), which a shared machine inflates far less than the wall time.
Bytecode is written and reused as in a user's shell (``PYTHONDONTWRITEBYTECODE`` is dropped).

The command is the ``controlroom`` console script beside this interpreter when it is installed
there, else ``python -m engine`` (which pays no console-script overhead).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTE = "Rush order for J2 today; protect J3, J1 can slip."
TARGETS_MS = {"detect --help": 200.0, "brief --llm off": 300.0}


def controlroom() -> list[str]:
    script = Path(sys.executable).parent / "controlroom"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "engine"]


def cases() -> dict[str, list[str]]:
    cr = controlroom()
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "--help": [*cr, "--help"],
        "--version": [*cr, "--version"],
        "detect --help": [*cr, "detect", "--help"],
        "tickets --help": [*cr, "tickets", "--help"],
        "brief --llm off": [*cr, "brief", NOTE, "--date", "2026-11-23", "--llm", "off"],
    }


def time_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one child process, in ms. CPU comes from
    ``getrusage`` (microseconds; ``os.times`` counts 10 ms clock ticks, too coarse here)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {r.returncode}: {r.stderr.decode()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed * 1000.0, cpu * 1000.0


def load() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=15, help="runs per command (default 15)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    runs = max(1, args.runs)

    var = tempfile.mkdtemp(prefix="cli-startup-")
    # Private runtime state and no developer .env: every run does the same work.
    env = {**os.environ, "CONTROLROOM_VAR": var, "CONTROLROOM_ENV_FILE": os.devnull}
    env.pop("ANTHROPIC_API_KEY", None)
    # A user's shell writes bytecode on the first run and reuses it; with this set (some CI and
    # sandbox shells set it) every run recompiles every module and measures the compiler.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    load_before = load()
    results: dict[str, dict[str, float]] = {}
    try:
        for name, argv in cases().items():
            time_once(argv, env)  # warm-up (and bytecode written)
            samples = [time_once(argv, env) for _ in range(runs)]
            wall = [w for w, _cpu in samples]
            results[name] = {
                "median_ms": statistics.median(wall),
                "min_ms": min(wall),
                "max_ms": max(wall),
                "cpu_median_ms": statistics.median(cpu for _w, cpu in samples),
            }
    finally:
        shutil.rmtree(var, ignore_errors=True)
    load_after = load()

    if args.json:
        print(json.dumps({"runs": runs, "load": [load_before, load_after], "ms": results}))
        return 0
    base = results["python -c pass"]["median_ms"]
    print(f"controlroom start-up: median of {runs} runs; command: {' '.join(controlroom())}")
    print(f"load average before: {load_before}; after: {load_after}")
    print(
        f"{'command':<18} {'median':>9} {'min':>9} {'max':>9} {'over python':>12} "
        f"{'cpu median':>11}  target (wall median)"
    )
    for name, r in results.items():
        target = TARGETS_MS.get(name)
        verdict = ""
        if target is not None:
            verdict = f"< {target:.0f} ms " + ("ok" if r["median_ms"] < target else "MISSED")
        over = "" if name == "python -c pass" else f"+{r['median_ms'] - base:.0f} ms"
        print(
            f"{name:<18} {r['median_ms']:>6.0f} ms {r['min_ms']:>6.0f} ms {r['max_ms']:>6.0f} ms "
            f"{over:>12} {r['cpu_median_ms']:>8.0f} ms  {verdict}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
