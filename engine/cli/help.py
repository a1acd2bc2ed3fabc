"""What ``controlroom … --help`` shows beyond the options: a description and examples.

Each area's module declares its subcommands and their options; the prose around them lives
here, in two tables (the descriptions, the examples), so every ``--help`` reads and ends the
same way, the text is reviewed in one place, and ``tests/cli`` can check that each example
parses. A subcommand whose module sets its own ``description`` or ``epilog`` keeps it.
``decorate`` walks the whole tree once the areas have registered.
"""

from __future__ import annotations

import argparse
import textwrap

DESCRIPTIONS: dict[str, str] = {
    # command: the paragraph under its usage (one without: its line in `controlroom --help`)
    "demo": (
        "Run everything on this machine: an MQTT broker (the one named, one already "
        "on 127.0.0.1:1883, or an embedded one), the five plant services and the control-room "
        "TUI, with a scenario running. Quitting the TUI (q) stops everything it started."
    ),
    "tui": (
        "Open the control-room TUI against services started elsewhere "
        "(`controlroom up`, docker compose). Without --broker it asks the simulator which "
        "broker the stack uses."
    ),
    "replay": (
        "Play a scenario through the monitor and diagnosis agents as fast as the CPU "
        'allows (no broker). Each output line is {"topic": ..., "payload": ...}.'
    ),
    "eval": (
        "Replay scenarios (given ones, or a random suite) and score event-level "
        "precision/recall, false alarms per fault-free day, detection latency, severity at "
        "detection and diagnosis accuracy. Prints a summary; --report writes markdown, --json "
        "the figures."
    ),
    "detect": (
        "Stream a CSV (one row per sample, a time column, numeric signal columns) "
        "through the same monitor, causally (a decision at row t uses rows <= t only): it "
        "learns the file's normal from its first --warmup rows (each signal against the "
        "others) and flags the rows where an anomaly episode is open. Only numeric columns are "
        "signals; columns named like labels (anomaly, label, changepoint, ...) are never used. "
        "Malformed rows (wrong column count, unreadable time) are skipped and counted, with "
        "their line numbers on stderr; a non-numeric cell counts as a missing sample of that "
        "signal for that row. Prints the columns used and ignored, then one line: rows, "
        "signals, episodes, flagged %."
    ),
    "serve": (
        "Run one service of the live plant. Configuration: flags, then environment "
        "variables, then .env (see .env.example)."
    ),
    "up": (
        "Start a broker (the one named, else the local :1883 one if it answers, "
        "else an embedded one) and the five services as child processes; Ctrl-C stops all of "
        "them cleanly."
    ),
    "report": (
        "Score a live run from the JSONL logs its services wrote (var/logs of "
        "controlroom up or demo): detection and diagnosis as eval scores a replay, plus the "
        "wall-clock latency from alert to stored ticket."
    ),
    "broker": (
        "Generate the per-service broker credentials (var/broker/credentials.json, "
        "mode 0600) if missing, and write Mosquitto's password_file and acl_file from them and "
        "from the ACL table in engine/bus/acl.py."
    ),
    "tickets": (
        "Review work orders through the review service (controlroom serve review, or "
        "controlroom up). Without an action: the list of open and approved tickets."
    ),
    "alarms": (
        "The alarm lifecycle through the review service. Without an action: the alarms that "
        "are not back to normal."
    ),
    "operators": (
        "Manage the review API's operator tokens (stored hashed in "
        "var/operators.json, mode 0600). Run it as the account that runs the services."
    ),
    "brief": (
        "Read the planner's note, simulate baseline + 2 futures, and print the "
        "morning briefing and one Gantt chart per scenario. Logs go to stderr."
    ),
}

EXAMPLES: dict[str, tuple[str, ...]] = {
    "demo": (
        "controlroom demo",
        "controlroom demo --scenario sudden_clog_and_drift --speed 600",
        "controlroom demo --assets 20",
    ),
    "tui": (
        "controlroom tui",
        "controlroom tui --api-host plant-host --broker mqtt://plant-host:1883",
    ),
    "scenario": ("controlroom scenario list", "controlroom scenario validate my_scenario.json"),
    "scenario validate": ("controlroom scenario validate chronic_wear my_scenario.json",),
    "scenario list": ("controlroom scenario list",),
    "scenario suite": ("controlroom scenario suite 20 --seed 7 --out suite/",),
    "rules": ("controlroom rules validate",),
    "rules validate": (
        "controlroom rules validate",
        "controlroom rules validate rules/mechanical.yaml my_rules.yaml",
    ),
    "replay": (
        "controlroom replay chronic_wear --seed 3 --out run.jsonl",
        "controlroom replay my_scenario.json --no-telemetry --out - | head",
    ),
    "eval": (
        "controlroom eval",
        "controlroom eval --suite 200 --seed 7 --report reports/metrics.md --json metrics.json",
        "controlroom eval --suite 20 --seed 8 --tuning var/tuning.json",
    ),
    "detect": (
        "controlroom detect export.csv --flags flags.csv",
        "controlroom detect export.csv --sep ';' --time-col Zeit --ignore-col label "
        "--flags flags.csv --out alerts.jsonl",
    ),
    "serve": (
        "controlroom serve review",
        "controlroom serve monitor --broker mqtt://broker.local:1883 --shard 1/2",
    ),
    "up": (
        "controlroom up --scenario chronic_wear --speed 60",
        "controlroom up --broker mqtt://broker.local:1883 --assets 10",
    ),
    "broker": (
        "controlroom broker init",
        "controlroom broker init --mosquitto-dir /etc/mosquitto/controlroom --owner 1883:1883",
        "controlroom broker acl",
    ),
    "report": (
        "controlroom report --logs var/logs",
        "controlroom report --logs var/logs --out run-report.md",
    ),
    "tickets": (
        "controlroom tickets",
        "controlroom tickets close T-0001 --reason false_positive --note 'valve stroking test'",
    ),
    "tickets list": (
        "controlroom tickets list --state all --asset pump01",
        "controlroom tickets list --json",
    ),
    "tickets show": ("controlroom tickets show T-0003",),
    "tickets approve": ("controlroom tickets approve T-0003 --note 'bearing ordered'",),
    "tickets edit": (
        "controlroom tickets edit T-0003 --severity high --labels bearing,urgent",
        "controlroom tickets edit T-0003 --body-file - < body.md",
    ),
    "tickets close": (
        "controlroom tickets close T-0001 --reason false_positive --note 'valve stroking test'",
    ),
    "alarms": (
        "controlroom alarms",
        "controlroom alarms shelve pump01-A1b2c3 --minutes 30 --note 'valve work'",
    ),
    "alarms list": (
        "controlroom alarms list --state unacked --asset pump01",
        "controlroom alarms list --json",
    ),
    "alarms show": ("controlroom alarms show pump01-A1b2c3",),
    "alarms ack": ("controlroom alarms ack pump01-A1b2c3 --note 'operator on the way'",),
    "alarms shelve": (
        "controlroom alarms shelve pump01-A1b2c3 --minutes 30 --note 'valve work'",
        "controlroom alarms shelve pump01-A1b2c3 --until-clear",
    ),
    "alarms unshelve": ("controlroom alarms unshelve pump01-A1b2c3",),
    "alarms out-of-service": (
        "controlroom alarms out-of-service pump02 --reason 'bearing change, permit 4711'",
    ),
    "alarms in-service": ("controlroom alarms in-service pump02",),
    "alarms assets": ("controlroom alarms assets",),
    "alarms kpis": ("controlroom alarms kpis", "controlroom alarms kpis --hours 8 --operators 2"),
    "operators": ("controlroom operators add alice", "controlroom operators whoami"),
    "operators add": (
        "controlroom operators add alice",
        "controlroom operators add alice --replace",
    ),
    "operators list": ("controlroom operators list",),
    "operators remove": ("controlroom operators remove alice",),
    "operators whoami": (
        "controlroom operators whoami",
        "controlroom operators whoami --api https://plant-host:8105 --token-file alice.token",
    ),
    "brief": (
        'controlroom brief "Rush order for J2 today; protect J3, J1 can slip." --date 2026-11-23',
        "controlroom brief - --factory two_shift --json < note.txt",
    ),
    "factory": ("controlroom factory list", "controlroom factory show toy_day"),
    "factory validate": ("controlroom factory validate my_plant.yaml",),
    "factory list": ("controlroom factory list",),
    "factory show": ("controlroom factory show two_shift --width 120",),
}

TOP_EXAMPLES = (
    "controlroom demo",
    "controlroom replay chronic_wear --seed 3 --out run.jsonl",
    'controlroom brief "Rush order for J2 today; protect J3, J1 can slip."',
    "controlroom COMMAND --help",
)

EXIT_STATUS = (
    "exit status: 0 done, 1 runtime failure (a broker or service that does not answer, a run "
    "that failed), 2 bad input (a file, field, name or URL), 130 interrupted, 141 output pipe "
    "closed early. Errors are one line on stderr; --debug or CONTROLROOM_DEBUG=1 adds the "
    "traceback."
)


class Formatter(argparse.HelpFormatter):
    """Wraps prose paragraphs to the terminal but keeps indented lines (examples) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out: list[str] = []
        for line in text.splitlines():
            if line.startswith(" ") or not line.strip():
                out.append(indent + line)
            else:
                out.append(
                    textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent)
                )
        return "\n".join(out)


def examples_epilog(lines: tuple[str, ...]) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser's subcommands by name (empty for a leaf)."""
    for action in parser._actions:  # argparse has no public accessor for its subcommands
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def one_line_helps(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each subcommand's ``help=`` text, the line shown in its parent's command list."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {a.dest: a.help or "" for a in action._choices_actions}
    return {}


def decorate(parser: argparse.ArgumentParser, path: str = "") -> None:
    """For every subcommand below ``parser``: a description when the module gave none (from
    :data:`DESCRIPTIONS`, else its one-line help), the examples, ``--debug`` accepted after the
    subcommand too, and the command's name recorded for error messages."""
    helps = one_line_helps(parser)
    for name, sub in subparsers(parser).items():
        command = f"{path} {name}".strip()
        sub.formatter_class = Formatter
        if not sub.description and command in DESCRIPTIONS:
            sub.description = DESCRIPTIONS[command]
        elif not sub.description and helps.get(name):
            line = helps[name]
            sub.description = line[0].upper() + line[1:] + ("" if line.endswith(".") else ".")
        if not sub.epilog and command in EXAMPLES:
            sub.epilog = examples_epilog(EXAMPLES[command])
        sub.set_defaults(_command=command)
        if "--debug" not in sub._option_string_actions:
            sub.add_argument(
                "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
            )
        decorate(sub, command)
