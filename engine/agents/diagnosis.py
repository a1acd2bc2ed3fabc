"""Agent B — diagnosis: alerts (and the telemetry history around them) in, root causes out.

``feed(Telemetry | AlertEvent) -> list[DiagnosisReport]``; pure: no I/O (the rules are given to
it), no clock (every wait is in simulated time), never reads ``truth``.

Per asset it keeps the last 30 min of samples and the model residuals (``diagnosis_history``),
learns the asset's healthy reference from its first minutes of steady running (like the monitor,
independently), and for every new alert:

0. reports a *provisional* cause at once, from the history up to the alert, so the ticket agent
   can open the work order within milliseconds of the alarm (about 9 in 10 are already right:
   a worn bearing, whose temperature lags its vibration by minutes, is the usual exception);
1. waits at least ``min_wait_s`` of simulated time after the alert, so the history *after* the
   onset is there (a stuck reading has to stay stuck, a valve move has to settle);
2. computes the features and evaluates every YAML rule (``rules/*.yaml``); a cause scores the
   noisy-or of its matching rules' confidences (plus any feedback tuning offset);
3. decides as soon as the best cause is confident (``decide_confidence``) and clear of the
   runner-up (``decide_margin``), re-checking every ``recheck_s``; otherwise it waits for more
   evidence up to ``max_wait_s`` (a slowly worn bearing needs its temperature to follow the
   vibration) and then reports the best it has, or ``unknown``.

So the final diagnosis arrives 1–15 simulated minutes after its alert (typically about one). An
alert that clears before that is diagnosed at once with the history it had. ``flush()`` decides
everything still pending (end of a replay).

**Escalation** (contract C2): a later revision of an alert with a higher severity yields an
``update`` report — the cause already reported, the new severity (never lower than one already
reported). A cleared alert yields nothing new beyond its final.

**Restarts.** ``export_state()`` / ``restore_state()`` carry everything across (reference,
model state, pending finals, the history they need: ``diagnosis_state``). Without saved state an
agent has no history: it does not guess. Until it holds a learned reference and a minute of
history, an alert's reports are deferred (up to ``max_defer_s``); a report that still has to be
made without the history before the onset says so in its summary.

**A fleet's tick at once** (``feed_batch``, the replay's path): the same reports in the same
order as ``feed`` of each sample, but the per-sample model work of every pump in the tick is one
numpy step (``diagnosis_bank``; the fleet bench at 1,000 pumps: ~30 % less diagnosis CPU per
sample, the rest is decisions). The live service takes the same path for every telemetry
burst the bus hands it (``AgentService.on_telemetry``); a burst under ``BATCH_FROM`` samples
goes sample by sample. A replay's ``FleetTick`` (the fleet simulator's values as one array) is
read without building its messages, and while the same pumps keep coming in order the
per-sample checks are made once per tick (``_FleetPlan``, ``fleet_runs``).

Why one module of ~930 lines: ``DiagnosisAgent`` is one state machine (pending alerts, deferral,
provisional then final reports, state export, which pumps the batch path holds); its features,
rules, history, arrays and saved state are already in ``diagnosis_*.py``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, cast

from engine.agents.diagnosis_bank import HistoryBank
from engine.agents.diagnosis_features import PRE_S, compute_features
from engine.agents.diagnosis_history import N_SIG, AssetHistory, History
from engine.agents.diagnosis_rules import Rule, render
from engine.agents.diagnosis_state import (
    AlertState,
    AssetState,
    DiagnosisState,
    PendingState,
    asset_history_state,
    restore_asset_history,
)
from engine.agents.fleet_runs import FleetRuns
from engine.agents.monitor import MonitorConfig
from engine.agents.monitor_intake import MAX_REJECTIONS, Rejection, RunState
from engine.agents.monitor_physics import RESIDUALS
from engine.agents.steady import SETTLE_S
from engine.agents.tuning import rule_offset
from engine.plant.fleet_tick import FleetTick
from engine.plant.signals import SIGNAL_ORDER
from engine.schemas import (
    CATEGORY_OF_CAUSE,
    SEVERITIES,
    AlertEvent,
    Category,
    DiagnosisReport,
    Hypothesis,
    RootCause,
    Severity,
    Telemetry,
    Tuning,
)


@dataclass(frozen=True)
class DiagnosisConfig:
    """When the agent decides (simulated seconds), and its bounds."""

    min_wait_s: float = 60.0
    """The final diagnosis is not decided before this long after the alert: a stuck reading
    has to stay stuck, a valve move has to settle (one minute of post-onset history)."""
    max_wait_s: float = 900.0
    """The latest a final is decided after its alert (15 min; after a deferral, after the
    history came back), confident or not: enough for a worn bearing's temperature (10-min
    thermal lag) to follow its vibration."""
    recheck_s: float = 30.0
    """Between ``min_wait_s`` and ``max_wait_s`` the rules are evaluated again this often (and
    a deferred alert looks again for its history): the final's delay in 30 s steps."""
    decide_confidence: float = 0.8
    """A final is decided early only when the best cause's score (the noisy-or of its matching
    rules' confidences, plus tuning) reaches this."""
    decide_margin: float = 0.15
    """... and leads the runner-up cause by at least this much: two close causes wait for more
    evidence, up to ``max_wait_s``."""
    history_s: float = 1800.0
    """Samples kept per asset. A decision looks back at most 5 min before the onset, from at
    most 15 min after the alert (``max_wait_s``), and 10 min for trends: 30 min covers it."""
    warmup_s: float = 600.0
    """Settled running (s) from which each pump's healthy reference is learned, as the monitor
    learns its own (``MonitorConfig.warmup_s``, the same 10 min); until then a pump's alerts
    wait for it (up to ``max_defer_s``)."""
    settle_s: float = SETTLE_S
    """After a start or stop ramp, rows are marked invalid this long (the rule in ``steady``,
    shared with the monitor, so both agree on when a pump is settled)."""
    max_defer_s: float = 3600.0
    """An alert whose asset has no usable history (restart without saved state) waits this long
    for it before its report is made with what there is."""
    max_assets: int = 20_000
    """Assets tracked at once; past it the least recently heard asset with nothing pending is
    dropped (counted in ``stats``)."""
    max_alerts_per_asset: int = 32
    """Alerts tracked per asset (active, or awaiting their final); past it the oldest goes."""


SENSOR_CAUSES = {
    "sensor_drift": "drift.sensor",
    "sensor_stuck": "stuck.sensor",
    "noise_burst": "noise.sensor",
}
_RANK = {s: i for i, s in enumerate(SEVERITIES)}
_CLOSED_KEPT = 64
BATCH_FROM = 16
"""``feed_batch`` steps a tick of this many samples or more as arrays (``diagnosis_bank``);
a smaller one goes sample by sample, where numpy's per-call cost would outweigh the saving."""
_VALUES = itemgetter(*SIGNAL_ORDER)


@dataclass(slots=True)
class _FleetPlan:
    """A ``FleetTick`` whose every pump was stepped in one bank: the pumps' states and slots
    in the tick's order, for its next tick (``DiagnosisAgent._fleet``)."""

    runs: FleetRuns
    bank: HistoryBank
    states: list[_Asset]
    slots: list[int]
    histories: list[AssetHistory]
    rings: list[History]
    """Each pump's history ring (replaced only by the per-sample path, which drops the plan)."""
    index: dict[str, int]
    learning: list[int]
    """The pumps that had no reference yet (one learnt never goes: only a new run resets it)."""

    @classmethod
    def of(cls, tick: FleetTick, bank: HistoryBank, states: list[_Asset]) -> _FleetPlan | None:
        runs = FleetRuns.of(tick, [st.run for st in states])
        if runs is None:
            return None
        histories = [st.history for st in states]
        rings = [h.hist for h in histories]
        if any(r is None for r in rings):
            return None
        return cls(
            runs,
            bank,
            states,
            [st.slot for st in states],
            histories,
            rings,  # type: ignore[arg-type]
            {name: j for j, name in enumerate(tick.assets)},
            [j for j, h in enumerate(histories) if h.ref is None],
        )


def _max_severity(a: Severity, b: Severity | None) -> Severity:
    return a if b is None or _RANK[a] >= _RANK[b] else b


@dataclass
class _Pending:
    due: float
    deadline: float
    deferred: bool = False


@dataclass
class _Tracked:
    """One alert the agent has seen raised and not yet seen cleared."""

    alert: AlertEvent
    """The latest revision."""
    revision: int
    raised_ts: float
    """When it was first raised (revisions move ``alert.ts`` on)."""
    pending: _Pending | None
    reported: DiagnosisReport | None = None
    escalated_to: Severity | None = None


@dataclass
class _Asset:
    history: AssetHistory
    alerts: dict[str, _Tracked] = field(default_factory=dict)
    closed: OrderedDict[str, None] = field(default_factory=OrderedDict)
    run: RunState | None = None
    """Sample order (the monitor's intake rules): None until the first sample (or restore)."""
    bank: HistoryBank | None = None
    """Where the history ring lives once ``feed_batch`` took the pump on (``slot``)."""
    slot: int = -1
    banked: bool = False
    """The pump's sample-side state is the bank's (its objects are stale until synced out)."""
    queued: bool = False
    """A sample of it waits in ``feed_batch``'s current wave."""

    @property
    def pending(self) -> bool:
        return any(tr.pending is not None for tr in self.alerts.values())


class DiagnosisAgent:
    """Alerts + telemetry in, DiagnosisReports out (provisional and final per alert, plus an
    update per escalation)."""

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        tuning: Tuning | None = None,
        config: DiagnosisConfig | None = None,
        monitor_config: MonitorConfig | None = None,
    ) -> None:
        self.rules: list[Rule] = list(rules)
        self.tuning = tuning
        self.config = config or DiagnosisConfig()
        self.floors = dict((monitor_config or MonitorConfig()).floors)
        self._assets: OrderedDict[str, _Asset] = OrderedDict()
        self._busy: set[str] = set()  # assets with a pending alert (checked on every sample)
        self.stats = {
            "assets_dropped": 0,
            "alerts_dropped": 0,
            "deferred": 0,
            "finals_abandoned": 0,
            "duplicate": 0,
            "late": 0,
            "jump": 0,
            "new_run": 0,
        }
        """Counts for /health: assets and alerts dropped at the bounds, reports deferred for lack
        of history, finals the history could never support, samples kept out of the history
        (duplicate, late, an unconfirmed jump) and confirmed new runs."""
        self._rejections: list[Rejection] = []
        self._banks: dict[float, HistoryBank] = {}
        self._plan: _FleetPlan | None = None
        self._lru_dirty = False
        """An asset moved in ``_assets``' recency order since the plan's last tick."""

    def apply_tuning(self, tuning: Tuning | None) -> None:
        self.tuning = tuning

    # ------------------------------------------------------------------ input

    def feed(self, msg: Telemetry | AlertEvent) -> list[DiagnosisReport]:
        if isinstance(msg, Telemetry):
            self._plan = None
            st = self._asset(msg.asset)
            if st.banked:
                self._unbank(st)
            return self._telemetry(st, msg)
        if isinstance(msg, AlertEvent):
            return self._alert(msg)
        return []

    def _telemetry(self, st: _Asset, t: Telemetry) -> list[DiagnosisReport]:
        if not self._in_order(st, t):
            return []
        st.history.push(t, learn=not st.alerts)
        if t.asset not in self._busy:
            return []
        return self._due(t.asset, st, t.ts)

    def feed_batch(self, tick: Sequence[Telemetry]) -> list[DiagnosisReport]:
        """Telemetry of many assets at once (a fleet's tick): the same reports, in the same
        order, as ``feed`` of each sample in turn. The next complete, in-order sample of a pump
        already set up is stepped with the others as arrays (``HistoryBank``); any other sample
        (a first one, partial, out of order) goes through ``feed``'s own path where it stands.
        A ``FleetTick`` of the same pumps as the last one, all of whose samples were stepped
        so, is stepped at once (``_fleet``: no per-sample checks, the same reports)."""
        if len(tick) < BATCH_FROM:
            return [r for t in tick for r in self.feed(t)]
        if isinstance(tick, FleetTick):
            plan = self._plan
            if plan is not None and plan.runs.advance(tick):
                return self._fleet(plan, tick)
        self._plan = None
        split, queued = False, 0
        outs: list[tuple[int, list[DiagnosisReport]]] = []
        wave: dict[HistoryBank, list[tuple[int, _Asset, Telemetry, tuple[float, ...]]]] = {}
        assets = self._assets
        for i, t in enumerate(tick):
            st = assets.get(t.asset)  # ``_asset`` inline: the common case, once per sample
            if st is None:
                if wave and len(assets) >= self.config.max_assets:
                    split = True
                    self._step(wave, outs)  # an eviction must not drop a queued pump
                    wave = {}
                st = self._asset(t.asset)
            else:
                assets.move_to_end(t.asset)
            if st.queued:  # the asset's second sample in this tick: step what came before
                split = True
                self._step(wave, outs)
                wave = {}
            sig = t.signals
            vals = None
            if len(sig) == N_SIG and (st.banked or self._bankable(st)):
                try:  # noqa: SIM105 (suppress() costs a context manager per sample)
                    vals = _VALUES(sig)
                except KeyError:
                    pass
            run = st.run
            if vals is not None and run is not None and run.advance(t.seq, t.ts, t.scenario):
                if not st.banked:
                    self._bank(st)
                assert st.bank is not None
                st.queued = True
                queued += 1
                wave.setdefault(st.bank, []).append((i, st, t, vals))
                continue
            if st.banked:
                self._unbank(st)
            reps = self._telemetry(st, t)
            if reps:
                outs.append((i, reps))
        if isinstance(tick, FleetTick) and not split and queued == len(tick) and len(wave) == 1:
            ((bank, items),) = wave.items()
            self._plan = _FleetPlan.of(tick, bank, [st for _, st, _, _ in items])
            self._lru_dirty = False  # every pump of the tick was just moved to the end, in order
        self._step(wave, outs)
        outs.sort(key=lambda x: x[0])
        return [r for _, reps in outs for r in reps]

    def _fleet(self, plan: _FleetPlan, tick: FleetTick) -> list[DiagnosisReport]:
        """The next tick of a planned fleet (its runs already advanced): what ``feed_batch``
        does with it, without asking each sample what the plan already knows."""
        if self._lru_dirty:  # the recency order the per-sample path would leave
            move = self._assets.move_to_end
            for name in tick.assets:
                move(name)
            self._lru_dirty = False
        ts, n = tick.ts, plan.bank.n
        pos: list[int] = []
        for h, ring in zip(plan.histories, plan.rings, strict=True):  # ``_push``'s first loop
            k = ring.k
            pos.append(k % n)
            ring.k = k + 1
            h.last_ts = ts
        histories = plan.histories
        if plan.learning:
            plan.learning = [j for j in plan.learning if histories[j].ref is None]
        later = plan.learning
        if self._busy:
            index = plan.index
            busy = [index[a] for a in self._busy if a in index]
            if busy:
                later = sorted({*later, *busy})
        rows, valid = plan.bank.step(plan.slots, pos, ts, tick.values)
        outs: list[tuple[int, list[DiagnosisReport]]] = []
        self._settle(plan.states, tick.assets, ts, later, rows, valid, outs, None)
        return [r for _, reps in outs for r in reps]

    def _step(
        self,
        wave: dict[HistoryBank, list[tuple[int, _Asset, Telemetry, tuple[float, ...]]]],
        outs: list[tuple[int, list[DiagnosisReport]]],
    ) -> None:
        """Step the queued samples, bank by bank; then what ``feed`` does after the push (the
        warm-up of a pump still learning its reference, the pending alerts of a busy one)."""
        for bank, items in wave.items():
            states = [st for _, st, _, _ in items]
            for st in states:
                st.queued = False
            self._push(
                bank,
                states,
                [st.slot for st in states],
                [t.asset for _, _, t, _ in items],
                [t.ts for _, _, t, _ in items],
                [v for _, _, _, v in items],
                outs,
                [i for i, _, _, _ in items],
            )

    def _push(
        self,
        bank: HistoryBank,
        states: Sequence[_Asset],
        slots: Sequence[int],
        names: Sequence[str],
        ts: float | Sequence[float],
        values: Any,
        outs: list[tuple[int, list[DiagnosisReport]]],
        at: Sequence[int] | None = None,
    ) -> None:
        """One sample of each of ``states`` (one bank's) into its history (``ts``: each
        sample's time, or one for all), then the warm-up of those still learning and the
        pending alerts of the busy ones; reports go to ``outs`` under ``at[j]`` (default j)."""
        busy = self._busy
        one_ts = isinstance(ts, float)
        pos: list[int] = []
        later: list[int] = []
        n = bank.n  # every History of a bank has its ring length
        for j, st in enumerate(states):
            h = st.history
            hist = h.hist
            assert hist is not None
            k = hist.k
            pos.append(k % n)
            hist.k = k + 1
            h.last_ts = ts if one_ts else ts[j]  # type: ignore[index,assignment]
            if h.ref is None or names[j] in busy:
                later.append(j)
        rows, valid = bank.step(slots, pos, ts, values)
        self._settle(states, names, ts, later, rows, valid, outs, at)

    def _settle(
        self,
        states: Sequence[_Asset],
        names: Sequence[str],
        ts: float | Sequence[float],
        later: list[int],
        rows: Any,
        valid: Any,
        outs: list[tuple[int, list[DiagnosisReport]]],
        at: Sequence[int] | None,
    ) -> None:
        """After a bank step: the warm-up of the pumps ``later`` still learning and the
        pending alerts of the busy ones (``_push``'s arguments)."""
        busy = self._busy
        one_ts = isinstance(ts, float)
        for j in later:
            st = states[j]
            h = st.history
            if h.ref is None and valid[j] and not st.alerts:
                h.warm_up(rows[j])
            if names[j] in busy:
                reps = self._due(names[j], st, ts if one_ts else ts[j])  # type: ignore[index,arg-type]
                if reps:
                    outs.append((j if at is None else at[j], reps))

    def _bankable(self, st: _Asset) -> bool:
        """A pump set up and modelled, whose order is known: the batch can step it."""
        h, run = st.history, st.run
        obs = h.observer
        return (
            h.pump
            and h.hist is not None
            and h.since is not None
            and not h.unseen
            and obs is not None
            and obs.aligned is not None
            and obs.thermal.value is not None
            and run is not None
            and run.dt_known
        )

    def _bank(self, st: _Asset) -> None:
        h = st.history
        if st.bank is None:
            bank = self._banks.get(h.dt)
            if bank is None:
                cfg = self.config
                bank = self._banks[h.dt] = HistoryBank(cfg.history_s, h.dt, cfg.settle_s)
            st.bank, st.slot = bank, bank.adopt(h)
        st.bank.sync_in(st.slot, h)
        st.banked = True

    def _unbank(self, st: _Asset) -> None:
        """The pump's objects take its state back (a sample the batch does not handle)."""
        assert st.bank is not None
        st.bank.sync_out(st.slot, st.history)
        st.banked = False

    def _release(self, st: _Asset) -> None:
        if st.bank is not None:
            if st.banked:
                self._unbank(st)
            st.bank.release(st.slot)
            st.bank, st.slot = None, -1

    def take_rejections(self) -> list[Rejection]:
        """Samples kept out of the history since the last call (the service dead-letters them)."""
        out, self._rejections = self._rejections, []
        return out

    def _in_order(self, st: _Asset, t: Telemetry) -> bool:
        """Whether ``t`` may enter the asset's history. Why it matters here: a single sample
        stamped 10**6 s ahead used to make every pending final due at once, decided on no
        history as "unknown" — and the ticket store settles an episode's cause on its first
        final. Duplicates, late samples and unconfirmed jumps are kept out (counted, reported);
        a confirmed new run is taken (the history's windows are by time)."""
        run = st.run
        if run is None:
            st.run = RunState(t.seq, t.ts, t.scenario)
            return True
        prev_ts = run.last_ts
        verdict = run.classify(t.seq, t.ts, t.scenario)
        if verdict == "ok":
            if not run.dt_known:
                dt = t.ts - prev_ts
                run.dt, run.dt_known = (dt if 0.0 < dt <= 3600.0 else 1.0), True
            return True
        self.stats[verdict] += 1
        if verdict == "new_run":
            st.run = RunState(t.seq, t.ts, t.scenario, run=run.run + 1)
        if len(self._rejections) < MAX_REJECTIONS:
            why = f"{verdict}: seq {t.seq} ts {t.ts:g} after seq {run.last_seq} ts {run.last_ts:g}"
            self._rejections.append(Rejection(verdict, t.asset, t.msg_id, t.seq, t.ts, why))
        return verdict == "new_run"

    def flush(self) -> list[DiagnosisReport]:
        """Decide every pending alert now (end of a replay or shutdown)."""
        out = []
        for asset, st in self._assets.items():
            for tr in st.alerts.values():
                if tr.pending is not None:
                    out += self._final(st, tr, st.history.last_ts)
            self._busy.discard(asset)
        return out

    def _asset(self, asset: str) -> _Asset:
        st = self._assets.get(asset)
        if st is not None:
            if len(self._assets) > 1:
                self._assets.move_to_end(asset)
                self._lru_dirty = True
            return st
        self._plan = None
        if len(self._assets) >= self.config.max_assets:
            idle = next((a for a, s in self._assets.items() if not s.pending), None)
            if idle is not None:
                self._release(self._assets.pop(idle))
                self.stats["assets_dropped"] += 1
        cfg = self.config
        st = self._assets[asset] = _Asset(AssetHistory(cfg.history_s, cfg.warmup_s, cfg.settle_s))
        return st

    def forget(self, asset: str) -> list[DiagnosisReport]:
        """Drop an asset's state (a service evicts long-silent assets to bound its memory),
        deciding its pending alerts first: nothing waiting is silently dropped."""
        self._plan = None
        st = self._assets.pop(asset, None)
        self._busy.discard(asset)
        if st is None:
            return []
        self._release(st)
        out: list[DiagnosisReport] = []
        for tr in st.alerts.values():
            if tr.pending is not None:
                out += self._final(st, tr, st.history.last_ts)
        return out

    def _alert(self, a: AlertEvent) -> list[DiagnosisReport]:
        st = self._asset(a.asset)
        rev = a.revision
        tr = st.alerts.get(a.alert_id)
        if a.status == "active":
            if tr is None:
                return [] if a.alert_id in st.closed else self._raised(st, a, rev)
            if rev <= tr.revision:
                return []  # redelivered or older
            return self._revised(st, tr, a, rev)
        if tr is None:
            return []
        del st.alerts[a.alert_id]
        st.closed[a.alert_id] = None
        while len(st.closed) > _CLOSED_KEPT:
            st.closed.popitem(last=False)
        if tr.pending is None:
            return []
        out = self._final(st, tr, max(a.ts, st.history.last_ts))  # judged on its last active
        self._mark_busy(a.asset, st)
        return out

    def _raised(self, st: _Asset, a: AlertEvent, rev: int) -> list[DiagnosisReport]:
        out: list[DiagnosisReport] = []
        if len(st.alerts) >= self.config.max_alerts_per_asset:
            out += self._drop_oldest(st)
        cfg = self.config
        tr = _Tracked(a, rev, a.ts, _Pending(a.ts + cfg.min_wait_s, a.ts + cfg.max_wait_s))
        st.alerts[a.alert_id] = tr
        self._busy.add(a.asset)
        now = max(a.ts, st.history.last_ts)
        if not st.history.ready(now):
            assert tr.pending is not None
            tr.pending.deferred = True
            self.stats["deferred"] += 1
            return out
        return [*out, self._provisional(st, tr, now)]

    def _drop_oldest(self, st: _Asset) -> list[DiagnosisReport]:
        self.stats["alerts_dropped"] += 1
        old_id = next((i for i, t in st.alerts.items() if t.pending is None), None)
        if old_id is not None:
            del st.alerts[old_id]
            return []
        old_id, tr = next(iter(st.alerts.items()))
        del st.alerts[old_id]
        return self._final(st, tr, st.history.last_ts)

    def _revised(self, st: _Asset, tr: _Tracked, a: AlertEvent, rev: int) -> list[DiagnosisReport]:
        before = tr.alert.severity
        tr.alert, tr.revision = a, rev
        if _RANK[a.severity] <= _RANK[before]:
            return []
        tr.escalated_to = _max_severity(a.severity, tr.escalated_to)
        last = tr.reported
        if last is None:
            return []  # deferred: its first report will carry the severity
        severity = _max_severity(a.severity, last.severity)
        if severity == last.severity:
            return []
        update = last.model_copy(
            update={
                "stage": "update",
                "diagnosis_id": f"{a.alert_id}-U{rev}",
                "ts": a.ts,
                "severity": severity,
                "wall_time": None,
            }
        )
        tr.reported = update
        return [update]

    def _due(self, asset: str, st: _Asset, now: float) -> list[DiagnosisReport]:
        out = []
        cfg = self.config
        ready = st.history.ready(now)
        for tr in list(st.alerts.values()):
            p = tr.pending
            if p is None or now < p.due:
                continue
            if not ready:  # restarted without state: wait for a reference and some history
                if now < tr.raised_ts + cfg.max_defer_s:
                    p.due = now + cfg.recheck_s
                else:
                    out += self._final(st, tr, now)
                continue
            if p.deferred:  # the history is back: the provisional now, the final as usual
                p.deferred = False
                p.deadline = max(p.deadline, now + cfg.max_wait_s)
                out.append(self._provisional(st, tr, now))
            rep = self._decide(st, tr, now, final=now >= p.deadline)
            if rep is None:
                if now >= tr.raised_ts + cfg.max_defer_s:
                    out += self._final(st, tr, now)  # the history will not come back
                else:
                    p.due = now + cfg.recheck_s
                continue
            tr.pending, tr.reported = None, rep
            out.append(rep)
        self._mark_busy(asset, st)
        return out

    def _mark_busy(self, asset: str, st: _Asset) -> None:
        if not st.pending:
            self._busy.discard(asset)

    # ------------------------------------------------------------------ deciding

    def _provisional(self, st: _Asset, tr: _Tracked, now: float) -> DiagnosisReport:
        rep = self._decide(st, tr, now, final=True, provisional=True)
        assert rep is not None
        rep = rep.model_copy(
            update={"stage": "provisional", "diagnosis_id": f"{tr.alert.alert_id}-D0"}
        )
        tr.reported = rep
        return rep

    def _final(self, st: _Asset, tr: _Tracked, now: float) -> list[DiagnosisReport]:
        """Decide now (the alert cleared, the run ends, the wait is over). When the history
        cannot support a final (restart without saved state) none is made: an alert never
        reported gets an undetermined *provisional* report (so a work order exists), one
        already reported keeps its cause."""
        tr.pending = None
        rep = self._decide(st, tr, now, final=True)
        if rep is not None:
            tr.reported = rep
            return [rep]
        self.stats["finals_abandoned"] += 1
        return [] if tr.reported is not None else [self._provisional(st, tr, now)]

    def _decide(
        self, st: _Asset, tr: _Tracked, now: float, final: bool, provisional: bool = False
    ) -> DiagnosisReport | None:
        """The report, or None while undecided: not confident yet and not ``final``, or the
        history cannot support a final (``lost``) and nothing is decisive."""
        a = tr.alert
        masked = {
            s
            for o in st.alerts.values()
            if o is not tr and o.raised_ts < tr.raised_ts
            for s in o.alert.signals
            if s in RESIDUALS
        }
        h = st.history
        feats = compute_features(
            h.hist,
            h.ref,
            onset_ts=a.onset_ts,
            now_ts=now,
            alert_signals=list(a.signals),
            alert_score=a.score,
            alert_directions={e.signal: e.direction for e in a.evidence},
            masked=masked,
            floors=self.floors,
            asset=a.asset,
        )
        scores, matched = self._score(feats)
        ranked = sorted(scores, key=lambda c: -scores[c])
        top = ranked[0] if ranked else None
        best = scores[top] if top else 0.0
        second = scores[ranked[1]] if len(ranked) > 1 else 0.0
        decisive = (
            top is not None
            and best >= self.config.decide_confidence
            and best - second >= self.config.decide_margin
        )
        lost = None
        if h.first_ts is None:
            lost = "no telemetry from this asset yet (the agent restarted without its saved state)"
        elif h.pump and h.ref is None:
            lost = (
                "no healthy reference for this pump yet (the agent restarted without its saved"
                " state, or the pump has not run steadily since)"
            )
        elif not h.covers(a.onset_ts - PRE_S[0]):
            lost = "no history from before the onset (the agent restarted without its saved state)"
        if not decisive and not provisional and (not final or lost):
            return None
        return self._report(tr, now, feats, scores, matched, ranked, masked, lost)

    def _score(self, feats: dict[str, Any]) -> tuple[dict[str, float], dict[str, list[Rule]]]:
        matched: dict[str, list[Rule]] = {}
        for rule in self.rules:
            if rule.holds(feats):
                matched.setdefault(rule.cause, []).append(rule)
        scores = {}
        for cause, rules in matched.items():
            miss = 1.0
            for r in rules:
                c = min(1.0, max(0.0, r.confidence + rule_offset(self.tuning, r.id)))
                miss *= 1.0 - c
            scores[cause] = round(min(0.99, 1.0 - miss), 4)
        return scores, matched

    def _report(
        self,
        tr: _Tracked,
        now: float,
        feats: dict[str, Any],
        scores: dict[str, float],
        matched: dict[str, list[Rule]],
        ranked: list[str],
        masked: set[str],
        lost: str | None,
    ) -> DiagnosisReport:
        """``lost``: why the history cannot support every rule (said, never guessed around)."""
        a = tr.alert
        category: str
        if ranked:
            cause = ranked[0]
            rules = sorted(matched[cause], key=lambda r: -r.confidence)
            confidence = scores[cause]
            sensor = feats.get(SENSOR_CAUSES.get(cause, ""))
            summary = f"{_cause_text(cause, sensor)} on {a.asset}: {rules[0].title}"
            actions = list(dict.fromkeys(x for r in rules for x in r.actions))
            evidence = [render(r.explain, feats) for r in rules if r.explain]
            category = rules[0].category or CATEGORY_OF_CAUSE[cause]
        else:
            cause, rules, confidence, sensor = "unknown", [], 0.2, None
            summary = (
                f"Unexplained anomaly on {a.asset} ({', '.join(a.signals[:4])}): no rule matched"
            )
            if lost:
                summary = f"Cause undetermined on {a.asset}: {lost}"
            actions = ["Review the alert's evidence and trends; add a rule if the pattern recurs"]
            evidence = []
            category = "unknown"
        evidence += [
            f"{e.signal}: {e.direction} ({e.detector}), {e.value:.3g} vs baseline "
            f"{e.baseline_mean:.3g}, score {e.score:.2f}"
            for e in a.evidence[:4]
        ]
        if masked:
            evidence.append(
                "judged beyond the earlier active alert(s) on: " + ", ".join(sorted(masked))
            )
        if lost:
            evidence.append(lost)
        alternatives = [
            Hypothesis(
                root_cause=cast("RootCause", c),
                confidence=scores[c],
                rules=[r.id for r in matched[c]],
            )
            for c in ranked[1:]
        ]
        signals = [sensor] if isinstance(sensor, str) and sensor != "?" else []
        signals += [s for s in a.signals if s not in signals]
        severity = _max_severity(_severity(cause, feats, a.severity), tr.escalated_to)
        return DiagnosisReport(
            diagnosis_id=f"{a.alert_id}-D1",
            alert_id=a.alert_id,
            asset=a.asset,
            ts=now,
            onset_ts=a.onset_ts,
            root_cause=cast("RootCause", cause),
            confidence=round(confidence, 3),
            category=cast("Category", category),
            severity=severity,
            summary=summary[:500],
            alternatives=alternatives,
            actions=[x[:500] for x in actions[:10]],
            evidence=[x[:500] for x in evidence[:12]],
            matched_rules=[r.id for c in ranked for r in matched[c]],
            signals=signals[:32],
        )

    # ------------------------------------------------------------------ state

    def export_state(self, *, tail_s: float = 0.0) -> DiagnosisState:
        """Everything a fresh agent needs to carry on exactly as this one would (pure data):
        ``export_asset`` of every asset."""
        assets = [self._export(name, st, tail_s) for name, st in self._assets.items()]
        return DiagnosisState(assets=assets)

    def export_asset(self, name: str, *, tail_s: float = 0.0) -> AssetState | None:
        """One asset's part of ``export_state`` (None: the agent holds nothing for it). Why
        apart: an asset's reports depend on its own state only, so a service can save just the
        asset that changed — the cost of a save stays flat as the fleet grows.

        History: the rows its pending finals will read (from ``PRE_S`` before the earliest
        pending onset, and the trend window), plus its last ``tail_s`` seconds (so alerts
        raised right after a restart also have their pre-onset history)."""
        st = self._assets.get(name)
        return None if st is None else self._export(name, st, tail_s)

    def asset_names(self) -> list[str]:
        return list(self._assets)

    def _export(self, name: str, st: _Asset, tail_s: float) -> AssetState:
        h = st.history
        if st.banked:
            assert st.bank is not None
            st.bank.sync_out(st.slot, h)
        needed = [
            tr.alert.onset_ts - PRE_S[0] for tr in st.alerts.values() if tr.pending is not None
        ]
        since = min(needed) if needed else math.inf
        if needed:
            since = min(since, h.last_ts - 600.0)
        if tail_s > 0:
            since = min(since, h.last_ts - tail_s)
        return AssetState(
            asset=name,
            **asset_history_state(h, since),
            alerts=[
                AlertState(
                    alert=tr.alert,
                    revision=tr.revision,
                    raised_ts=tr.raised_ts,
                    pending=None
                    if tr.pending is None
                    else PendingState(
                        due=tr.pending.due,
                        deadline=tr.pending.deadline,
                        deferred=tr.pending.deferred,
                    ),
                    reported=tr.reported,
                    escalated_to=tr.escalated_to,
                )
                for tr in st.alerts.values()
            ],
            closed=list(st.closed),
        )

    def restore_state(self, state: DiagnosisState) -> None:
        """Take over a saved state (replaces whatever this agent held)."""
        self._plan = None
        cfg = self.config
        for st in self._assets.values():
            self._release(st)
        self._assets.clear()
        self._busy.clear()
        for s in state.assets:
            st = _Asset(restore_asset_history(s, cfg.history_s, cfg.warmup_s, cfg.settle_s))
            for al in s.alerts:
                p = al.pending
                st.alerts[al.alert.alert_id] = _Tracked(
                    alert=al.alert,
                    revision=al.revision,
                    raised_ts=al.raised_ts,
                    pending=None if p is None else _Pending(p.due, p.deadline, p.deferred),
                    reported=al.reported,
                    escalated_to=al.escalated_to,
                )
            st.closed = OrderedDict.fromkeys(s.closed[-_CLOSED_KEPT:])
            self._assets[s.asset] = st
            if st.pending:
                self._busy.add(s.asset)


def _cause_text(cause: str, sensor: Any) -> str:
    text = cause.replace("_", " ").capitalize()
    if cause in SENSOR_CAUSES and isinstance(sensor, str) and sensor != "?":
        return f"{text} ({sensor} transmitter)"
    return text


def _severity(cause: str, f: dict[str, Any], alert_severity: Severity) -> Severity:
    """Operator priority from the physics, not from the detector's score."""

    def num(key: str) -> float:
        v = f.get(key)
        return float(v) if isinstance(v, int | float) and not math.isnan(v) else float("nan")

    if cause == "bearing_wear":
        vib, temp = num("vibration"), num("bearing_temp")
        if vib >= 4.5 or temp >= 85.0:
            return "critical"  # ISO 10816-3 zone D / bearing alarm temperature
        return "high" if vib >= 2.8 or temp >= 75.0 else "medium"
    if cause == "clogging":
        loss = -num("res.flow.delta")
        if math.isnan(loss):
            return "medium"
        return (
            "critical" if loss >= 40 else "high" if loss >= 20 else "medium" if loss >= 8 else "low"
        )
    if cause == "valve_stuck":
        return "high"
    if cause in ("sensor_drift", "sensor_stuck"):
        return "medium"
    if cause == "noise_burst":
        return "low"
    return alert_severity


__all__ = ["DiagnosisAgent", "DiagnosisConfig"]
