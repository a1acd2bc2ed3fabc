"""How long a newcomer waits after typing ``controlroom demo``: to the TUI, to the first alarm
on screen, to its work order.

    python bench/demo_first_alarm.py             # 3 runs, medians
    python bench/demo_first_alarm.py --runs 5 -- --speed 600    # arguments after -- go to demo

Each run starts ``controlroom demo --broker embedded`` in a private tmux server at 80x24 (as an
operator's terminal; private runtime dir and free ports, so it never touches a running stack),
reads the screen every 0.1 s, quits with ``q`` and waits for the demo to end. Times are wall
seconds from launch. Needs tmux. Prints the load average with the figures.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.bus.broker import free_port  # noqa: E402
from engine.services.settings import SERVICE_NAMES, port_env  # noqa: E402

MARKS: dict[str, Callable[[str], object]] = {
    "TUI on screen": lambda s: "CONTROL ROOM" in s,
    "first alarm on screen": lambda s: any(
        int(n) > 0 for n in re.findall(r"Al(?:erts|arms) \((\d+)", s)
    ),
    "first work order on screen": lambda s: re.search(r"\bopen\s+(LOW|MED|HIGH|CRIT)", s),
}


def tmux(sock: str, *args: str) -> str:
    return subprocess.run(
        ["tmux", "-L", sock, *args], capture_output=True, text=True, timeout=10
    ).stdout


def one_run(demo_args: list[str], timeout: float) -> dict[str, float]:
    sock = f"crbench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="demo-bench-") as tmp:
        env = {
            **os.environ,
            "CONTROLROOM_VAR": str(Path(tmp) / "var"),
            "CONTROLROOM_ENV_FILE": os.devnull,
            "TERM": "xterm-256color",
            **{port_env(name): str(free_port()) for name in SERVICE_NAMES},
        }
        # As in a user's shell: bytecode written once and reused (with this set, as some CI and
        # sandbox shells do, every process of the demo recompiles every module it imports).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        command = shlex.join(
            [sys.executable, "-m", "engine", "demo", "--broker", "embedded", *demo_args]
        )
        found: dict[str, float] = {}
        t0 = time.monotonic()
        subprocess.run(
            ["tmux", "-L", sock, "-f", "/dev/null", "new-session", "-d", "-s", "bench",
             "-x", "80", "-y", "24", command],
            env=env, cwd=ROOT, check=True, timeout=10,
        )  # fmt: skip
        try:
            while len(found) < len(MARKS) and time.monotonic() - t0 < timeout:
                screen = tmux(sock, "capture-pane", "-p", "-t", "bench")
                now = time.monotonic() - t0
                for name, seen in MARKS.items():
                    if name not in found and seen(screen):
                        found[name] = now
                time.sleep(0.1)
            tmux(sock, "send-keys", "-t", "bench", "q")
            deadline = time.monotonic() + 40
            while tmux(sock, "list-sessions") and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            tmux(sock, "kill-server")
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds per run (180)")
    ap.add_argument("demo_args", nargs="*", help="extra arguments for controlroom demo")
    args = ap.parse_args()
    if shutil.which("tmux") is None:
        print("demo_first_alarm: needs tmux (apt-get install tmux)", file=sys.stderr)
        return 2
    load = os.getloadavg()
    runs = []
    for i in range(max(1, args.runs)):
        found = one_run(args.demo_args, args.timeout)
        runs.append(found)
        shown = ", ".join(f"{k} {v:.1f} s" for k, v in found.items()) or "nothing"
        print(f"run {i + 1}: {shown}", flush=True)
    print(f"controlroom demo {' '.join(args.demo_args)}".rstrip() + f": {len(runs)} runs")
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    for name in MARKS:
        times = [r[name] for r in runs if name in r]
        if not times:
            print(f"{name:<28} not seen within {args.timeout:.0f} s")
            continue
        missed = len(runs) - len(times)
        note = f" ({missed} runs never showed it)" if missed else ""
        print(
            f"{name:<28} median {statistics.median(times):5.1f} s  "
            f"(min {min(times):.1f}, max {max(times):.1f}){note}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
