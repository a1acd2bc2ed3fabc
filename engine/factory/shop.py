"""The simulator's inner loop: a factory under one scenario compiled to integer arrays, and the
decoder that places a sequence of steps on the machines.

Everything that evaluates a schedule goes through :func:`decode`: the spec's EDD list
scheduler (``scheduler.simulate``: all steps of the most urgent job first, then the next job),
the dispatch rules and the improvement search. The placement rule is the spec's (section 8):
each step, in sequence order, goes to the **earliest** whole hour at or after its job's release
and its predecessors' ends, inside its machine's window, in a free gap long enough for the
whole step (no preemption; gaps left earlier are filled). A step that fits nowhere is
unscheduled, and so are its successors.

Why arrays: the search evaluates thousands of sequences, and a 1,000-job factory has 5,000
steps; building validated models per placement would cost more than the scheduling itself.
Models are built once, at the end, from the winner (``scheduler.build_result``).

Free time per machine is a sorted list of disjoint gaps kept in blocks of about
:data:`BLOCK` gaps, each block knowing its longest gap: a step skips whole blocks that cannot
hold it, so placing a step costs O(log n + BLOCK + n / BLOCK) rather than a walk over every
small gap left behind (the difference between n^1.4 and n^1.05 at 10,000 jobs).

Why one module of ~530 lines: the two decoders and the free-time structure they share are the
simulator's inner loop; keeping them side by side keeps their placement rule visibly identical
(a property test holds them equal).
"""

from __future__ import annotations

import gc
import threading
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from fractions import Fraction
from functools import lru_cache
from operator import sub

from engine.factory.models import FactoryConfig, Job, Step
from engine.factory.scenario import ScenarioSpec, SlowdownMods

BLOCK = 32
CHUNK = 16


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a schedule is built. Decoding and building a
    result allocate tens of thousands of acyclic objects (freed by reference counting); left
    on, the collector rescans them again and again and turns n log n into n^1.3 at 10,000
    jobs. Nested and threaded uses are counted; the last one out turns it back on."""
    global _paused
    with _gc_lock:
        if _paused == 0:
            was = gc.isenabled()
            gc.disable()
            _was_enabled.append(was)
        _paused += 1
    try:
        yield
    finally:
        with _gc_lock:
            _paused -= 1
            if _paused == 0 and _was_enabled.pop():
                gc.enable()


_gc_lock = threading.Lock()
_paused = 0
_was_enabled: list[bool] = []


class ScenarioError(ValueError):
    """A scenario that does not fit the factory (unknown job or machine, time out of range)."""


# --------------------------------------------------------------------------------------------
# Scenario -> effective factory
# --------------------------------------------------------------------------------------------


def apply_scenario(factory: FactoryConfig, spec: ScenarioSpec) -> FactoryConfig:
    """The factory as the scenario sees it (a new object; ``factory`` is not touched).

    A rush changes the job's release and due time. A slowdown or a down window changes no
    data: they change when and how fast a machine works, which the decoder handles.
    """
    rush = spec.rush
    if rush is not None:
        if rush.rush_job_id not in factory.job_ids:
            raise ScenarioError(f"rush_job_id {rush.rush_job_id!r} is not a job of the factory")
        if rush.due_time > factory.time_horizon:
            raise ScenarioError(
                f"rush due_time {rush.due_time} is past the horizon {factory.time_horizon}"
            )
        jobs = tuple(
            j.model_copy(update={"release_time": rush.arrival_time, "due_time": rush.due_time})
            if j.id == rush.rush_job_id
            else j
            for j in factory.jobs
        )
        return factory.model_copy(update={"jobs": jobs})
    window = spec.slowdown or spec.down
    if window is not None:
        if window.machine_id not in factory.machine_ids:
            raise ScenarioError(f"machine_id {window.machine_id!r} is not a machine of the factory")
        if window.end_time > factory.time_horizon:
            raise ScenarioError(
                f"window end_time {window.end_time} is past the horizon {factory.time_horizon}"
            )
    return factory


def slowed_end(start: int, work: int, slow: SlowdownMods | None) -> int:
    """End hour of ``work`` hours of work started at ``start`` on a machine slowed by ``slow``:
    one hour of work per hour outside the window, ``1/factor`` inside it; the exact finish is
    rounded to the nearest hour (halves up), and is at least one hour after the start."""
    if slow is None or start + work <= slow.start_time or start >= slow.end_time:
        return start + work
    return _slowed(start, work, slow.start_time, slow.end_time, slow.slowdown_factor)


@lru_cache(maxsize=65_536)
def _slowed(start: int, work: int, lo: int, hi: int, factor_f: float) -> int:
    factor = Fraction(factor_f).limit_denominator(1000)
    t = Fraction(start)
    left = Fraction(work)
    if t < lo:  # full speed until the window opens
        done = min(left, lo - t)
        t += done
        left -= done
    if left > 0 and t < hi:  # 1/factor speed inside the window
        capacity = (hi - t) / factor
        if left <= capacity:
            t += left * factor
            left = Fraction(0)
        else:
            t = Fraction(hi)
            left -= capacity
    t += left  # full speed again after the window
    end = int(t + Fraction(1, 2))  # nearest hour, halves up (t > 0)
    return max(end, start + 1)


# --------------------------------------------------------------------------------------------
# Compiled shop
# --------------------------------------------------------------------------------------------


def step_order(job: Job) -> tuple[Step, ...]:
    """The job's steps in precedence order; config order among steps ready together."""
    steps = job.steps
    if all(s.precedence == ((steps[i - 1].id,) if i else ()) for i, s in enumerate(steps)):
        return steps  # a plain routing, the common case (checked before the cache: hashing
        # the steps for it costs more than this, at 10,000 jobs ~15 ms)
    return _step_order(steps)


@lru_cache(maxsize=16_384)
def _step_order(steps: tuple[Step, ...]) -> tuple[Step, ...]:
    import heapq

    pos = {s.id: i for i, s in enumerate(steps)}
    waiting = {s.id: len(s.precedence) for s in steps}
    succ: dict[str, list[str]] = {s.id: [] for s in steps}
    for s in steps:
        for p in s.precedence:
            succ[p].append(s.id)
    heap = [pos[s.id] for s in steps if waiting[s.id] == 0]
    heapq.heapify(heap)
    out: list[Step] = []
    while heap:
        step = steps[heapq.heappop(heap)]
        out.append(step)
        for nxt in succ[step.id]:
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                heapq.heappush(heap, pos[nxt])
    return tuple(out)  # the factory validated acyclicity, so every step is here


@dataclass(frozen=True, slots=True, eq=False)
class _Routing:
    """The part of a compiled shop no scenario changes (steps, machines, precedence)."""

    step_ids: tuple[str, ...]
    op_job: tuple[int, ...]
    op_machine: tuple[int, ...]
    op_dur: tuple[int, ...]
    op_preds: tuple[tuple[int, ...], ...]
    op_succs: tuple[tuple[int, ...], ...]
    job_ops: tuple[tuple[int, ...], ...]


@dataclass(frozen=True, slots=True, eq=False)
class Shop(_Routing):
    """A factory under one scenario as integer arrays: its routing (op ``i`` is a step; ops of
    a job are numbered consecutively in the job's precedence order) and the scenario's times."""

    factory: FactoryConfig
    """The effective factory (the scenario applied: a rush's release and due)."""
    spec: ScenarioSpec
    """The scenario compiled in (its label names the result)."""
    job_ids: tuple[str, ...]
    """Job ``j``'s id, in the factory's job order: every ``job_*`` array and ``op_job`` index
    jobs by this position."""
    job_release: tuple[int, ...]
    """Per job, the hour its first step may start (a rush order's release applied)."""
    job_due: tuple[int, ...]
    """Per job, the hour it is due; lateness is completion minus this, in whole hours."""
    job_priority: tuple[int, ...]
    """Per job, 0 low, 1 medium, 2 high: a dispatch tie-break, never a hard constraint."""
    machine_ids: tuple[str, ...]
    """Machine ``m``'s id: ``op_machine``, ``windows``, ``blocked``, ``slow`` and ``gaps`` index
    machines by this position."""
    windows: tuple[tuple[int, int], ...]
    """Per machine, its available hours ``(start, end)``: no step is placed outside them."""
    blocked: tuple[tuple[tuple[int, int], ...], ...]
    """Per machine, hours it is down inside its window (a MACHINE_DOWN scenario)."""
    slow: tuple[SlowdownMods | None, ...]
    """Per machine, the scenario's slowdown of it (work at ``1/slowdown_factor`` speed in its
    window), or None."""
    gaps: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]
    """Per machine, its free time before anything is placed: gap starts and gap ends (the
    window less the down time), copied by every decode."""

    @property
    def n_ops(self) -> int:
        return len(self.op_job)


ROUTINGS_KEPT = 8
_routings: dict[int, tuple[FactoryConfig, _Routing]] = {}
_routings_lock = threading.Lock()


def _routing(factory: FactoryConfig) -> _Routing:
    """The factory's routing, compiled once per factory object: a brief compiles the same
    factory for every scenario, rule and lever (8 times at 1,000 jobs, ~5 ms each). Keyed by
    identity (the factory is frozen), holding the factory so its id cannot be reused while
    cached; the last :data:`ROUTINGS_KEPT` are kept."""
    with _routings_lock:
        hit = _routings.get(id(factory))
    if hit is not None and hit[0] is factory:
        return hit[1]
    machine_index = {m.id: i for i, m in enumerate(factory.machines)}
    step_ids: list[str] = []
    op_job: list[int] = []
    op_machine: list[int] = []
    op_dur: list[int] = []
    op_preds: list[tuple[int, ...]] = []
    job_ops: list[tuple[int, ...]] = []
    for j, job in enumerate(factory.jobs):
        local: dict[str, int] = {}
        ops = []
        for step in step_order(job):
            op = len(step_ids)
            local[step.id] = op
            ops.append(op)
            step_ids.append(step.id)
            op_job.append(j)
            op_machine.append(machine_index[step.machine_id])
            op_dur.append(step.duration_hours)
            op_preds.append(tuple(local[p] for p in step.precedence))
        job_ops.append(tuple(ops))
    succs: list[list[int]] = [[] for _ in step_ids]
    for op, preds in enumerate(op_preds):
        for p in preds:
            succs[p].append(op)
    routing = _Routing(
        step_ids=tuple(step_ids),
        op_job=tuple(op_job),
        op_machine=tuple(op_machine),
        op_dur=tuple(op_dur),
        op_preds=tuple(op_preds),
        op_succs=tuple(tuple(s) for s in succs),
        job_ops=tuple(job_ops),
    )
    with _routings_lock:
        _routings[id(factory)] = (factory, routing)
        while len(_routings) > ROUTINGS_KEPT:
            del _routings[next(iter(_routings))]
    return routing


def compile_shop(factory: FactoryConfig, spec: ScenarioSpec) -> Shop:
    effective = apply_scenario(factory, spec)  # checks the scenario against the factory
    r = _routing(factory)  # a scenario changes times and machines, never the routing
    machine_index = {m.id: i for i, m in enumerate(effective.machines)}
    blocked: list[tuple[tuple[int, int], ...]] = [() for _ in effective.machines]
    down = spec.down
    if down is not None:
        blocked[machine_index[down.machine_id]] = ((down.start_time, down.end_time),)
    slow: list[SlowdownMods | None] = [None for _ in effective.machines]
    if spec.slowdown is not None:
        slow[machine_index[spec.slowdown.machine_id]] = spec.slowdown
    return Shop(
        **{f.name: getattr(r, f.name) for f in fields(_Routing)},  # the routing as compiled
        factory=effective,
        spec=spec,
        job_ids=effective.job_ids,
        job_release=tuple(j.release_time for j in effective.jobs),
        job_due=tuple(j.due_time for j in effective.jobs),
        job_priority=tuple(j.priority for j in effective.jobs),
        machine_ids=effective.machine_ids,
        windows=tuple((m.available_start, m.available_end) for m in effective.machines),
        blocked=tuple(blocked),
        slow=tuple(slow),
        gaps=tuple(
            _free_gaps(lo, hi, cut)
            for (lo, hi), cut in zip(
                ((m.available_start, m.available_end) for m in effective.machines),
                blocked,
                strict=True,
            )
        ),
    )


def _free_gaps(
    start: int, end: int, blocked: Sequence[tuple[int, int]]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``[start, end)`` less the ``blocked`` intervals, as (gap starts, gap ends)."""
    gaps = [(start, end)]
    for lo, hi in blocked:
        cut: list[tuple[int, int]] = []
        for a, b in gaps:
            if hi <= a or lo >= b:
                cut.append((a, b))
                continue
            if lo > a:
                cut.append((a, lo))
            if hi < b:
                cut.append((hi, b))
        gaps = cut
    return tuple(a for a, _ in gaps), tuple(b for _, b in gaps)


def job_order_sequence(shop: Shop, jobs: Sequence[int]) -> list[int]:
    """The op sequence that schedules whole jobs one after another (the spec's list rule)."""
    out: list[int] = []
    for j in jobs:
        out.extend(shop.job_ops[j])
    return out


# --------------------------------------------------------------------------------------------
# Free time
# --------------------------------------------------------------------------------------------


class FreeTime:
    """A machine's free hours: sorted, disjoint ``[start, end)`` gaps, in blocks that know their
    last end and a bound on their longest gap, and chunks of :data:`CHUNK` blocks that know a
    bound on their longest gap too. A step skips a whole chunk, then whole blocks, that cannot
    hold it: placing it costs O(log n + BLOCK + n / (BLOCK * CHUNK)) however many small gaps
    are left behind.

    The bounds are upper bounds, lowered lazily: taking time only shrinks gaps, so a bound
    stays true, and :meth:`earliest` brings a block's bound down to its longest gap when it
    scans the whole block in vain. Recomputing a block's longest gap at every placement that
    shrank it (the frontier gap, most placements) cost O(BLOCK) a step, three times the flat
    decoder's whole placement."""

    __slots__ = ("be", "bends", "bmax", "bs", "cmax")

    def __init__(self, start: int, end: int, blocked: Sequence[tuple[int, int]] = ()) -> None:
        starts, ends = _free_gaps(start, end, blocked)
        self.bs: list[list[int]] = [list(starts)] if starts else []
        self.be: list[list[int]] = [list(ends)] if starts else []
        self.bends: list[int] = [ends[-1]] if starts else []
        self.bmax: list[int] = [max(map(sub, ends, starts))] if starts else []
        self.cmax: list[int] = list(self.bmax)

    def copy(self) -> FreeTime:
        twin = FreeTime.__new__(FreeTime)
        twin.bs = [list(b) for b in self.bs]
        twin.be = [list(b) for b in self.be]
        twin.bends = list(self.bends)
        twin.bmax = list(self.bmax)
        twin.cmax = list(self.cmax)
        return twin

    def earliest(
        self, ready: int, work: int, slow: SlowdownMods | None
    ) -> tuple[int, int, int, int] | None:
        """``(start, end, block, index)`` of the first placement at or after ``ready`` that fits
        wholly in one gap, or None."""
        bends, bmax, cmax, bs, be = self.bends, self.bmax, self.cmax, self.bs, self.be
        k = bisect_right(bends, ready)
        nb = len(bends)
        first = True
        while k < nb:
            if k % CHUNK == 0 and cmax[k // CHUNK] < work:
                k += CHUNK
                first = False
                continue
            if bmax[k] < work:
                k += 1
                first = False
                continue
            starts, ends = bs[k], be[k]
            lo = bisect_right(ends, ready) if first else 0
            first = False
            for i in range(lo, len(starts)):
                start = starts[i]
                if start < ready:
                    start = ready
                end = start + work if slow is None else slowed_end(start, work, slow)
                if end <= ends[i]:
                    return start, end, k, i
            if lo == 0:  # no room anywhere in the block: its bounds come down to its longest gap
                bmax[k] = max(map(sub, ends, starts))
                c = k // CHUNK
                cmax[c] = max(bmax[c * CHUNK : (c + 1) * CHUNK])
            k += 1
        return None

    def take(self, k: int, i: int, start: int, end: int) -> None:
        starts, ends = self.bs[k], self.be[k]
        gap_start, gap_end = starts[i], ends[i]
        if start > gap_start:
            ends[i] = start
            if gap_end > end:
                starts.insert(i + 1, end)
                ends.insert(i + 1, gap_end)
        elif gap_end > end:
            starts[i] = end
        else:
            del starts[i], ends[i]
            if not starts:
                del self.bs[k], self.be[k], self.bends[k], self.bmax[k]
                self._chunks()
                return
        self.bends[k] = ends[-1]  # bmax[k] and the chunk's cmax stay upper bounds
        if len(starts) > 2 * BLOCK:
            half = len(starts) // 2
            self.bs[k : k + 1] = [starts[:half], starts[half:]]
            self.be[k : k + 1] = [ends[:half], ends[half:]]
            self.bends[k : k + 1] = [ends[half - 1], ends[-1]]
            self.bmax[k : k + 1] = [
                max(map(sub, ends[:half], starts[:half])),
                max(map(sub, ends[half:], starts[half:])),
            ]
            self._chunks()

    def _chunks(self) -> None:
        """Chunk maxima again after blocks were split or removed (every ~BLOCK placements)."""
        bmax = self.bmax
        self.cmax = [max(bmax[c : c + CHUNK]) for c in range(0, len(bmax), CHUNK)]


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class Mark:
    """The decoder's state just before step ``at`` of a sequence. Another sequence with the
    same first ``at`` steps places them identically, so it resumes here instead of placing
    them again. Never changed once made: a resume works on copies."""

    at: int
    starts: list[int]
    ends: list[int]
    ready: list[int]
    order: list[int]
    free: tuple[list[list[int]], list[list[int]]] | list[FreeTime]
    """Flat: (gap starts, gap ends) per machine; else each machine's :class:`FreeTime`."""


@dataclass(frozen=True, slots=True, eq=False)
class Decoded:
    """Where each op went: ``starts[i] == -1`` when op ``i`` is unscheduled."""

    starts: list[int]
    ends: list[int]
    ready: list[int]
    """The hour each op was ready (release or last predecessor); -1 when a predecessor never
    ran."""
    order: list[int]
    """The ops in the order they were placed."""
    marks: tuple[Mark, ...] = ()
    """States to resume from (``decode(..., every=k)``: before steps k, 2k, ...)."""


FLAT_LIMIT = 1_500
"""Up to this many steps free time is kept in flat per-machine lists (a handful of gaps each:
the search decodes small shops thousands of times, and the blocks only pay off when machines
accumulate hundreds of gaps)."""


def decode(
    shop: Shop,
    sequence: Sequence[int],
    *,
    resume: Decoded | None = None,
    first: int = 0,
    every: int = 0,
) -> Decoded:
    """Place ``sequence`` (every op once, each after its predecessors) on the machines.

    ``resume``: the schedule of a sequence equal to this one in its first ``first`` steps
    (a search move changes a sequence from some position on): placing starts from its last
    mark at or before ``first``, with the same result as from scratch. ``every``: leave a
    mark every ``every`` steps, for later decodes to resume from."""
    return _decode(
        shop, sequence, flat=len(shop.op_job) <= FLAT_LIMIT, resume=resume, first=first, every=every
    )


def _decode_flat(shop: Shop, sequence: Sequence[int]) -> Decoded:
    return _decode(shop, sequence, flat=True)


def _decode_blocked(shop: Shop, sequence: Sequence[int]) -> Decoded:
    return _decode(shop, sequence, flat=False)


def _decode(
    shop: Shop,
    sequence: Sequence[int],
    *,
    flat: bool,
    resume: Decoded | None = None,
    first: int = 0,
    every: int = 0,
) -> Decoded:
    """Resume (or start), place the sequence segment by segment, leaving marks between."""
    n = len(shop.op_job)
    total = len(sequence)
    inherited: tuple[Mark, ...] = ()
    mark: Mark | None = None
    if resume is not None:
        for i in range(len(resume.marks) - 1, -1, -1):
            if resume.marks[i].at <= first:
                mark, inherited = resume.marks[i], resume.marks[: i + 1]
                break
    gap_starts: list[list[int]] = []
    gap_ends: list[list[int]] = []
    free: list[FreeTime] | None = None
    if mark is None:
        at = 0
        starts, ends, ready, order = [-1] * n, [-1] * n, [-1] * n, []
        if flat:
            gap_starts = [list(s) for s, _ in shop.gaps]
            gap_ends = [list(e) for _, e in shop.gaps]
        else:
            free = [FreeTime(lo, hi, shop.blocked[m]) for m, (lo, hi) in enumerate(shop.windows)]
    else:
        at = mark.at
        starts, ends, ready = list(mark.starts), list(mark.ends), list(mark.ready)
        order = list(mark.order)
        if isinstance(mark.free, tuple):
            gap_starts = [list(g) for g in mark.free[0]]
            gap_ends = [list(g) for g in mark.free[1]]
        else:
            free = [f.copy() for f in mark.free]
    marks = list(inherited) if every else []
    stops = [k for k in range(every, total, every) if k > at] if every else []
    for stop in (*stops, total):
        place(shop, sequence[at:stop], starts, ends, ready, order, (gap_starts, gap_ends), free)
        at = stop
        if stop < total:
            state: tuple[list[list[int]], list[list[int]]] | list[FreeTime] = (
                ([list(g) for g in gap_starts], [list(g) for g in gap_ends])
                if free is None
                else [f.copy() for f in free]
            )
            marks.append(Mark(stop, list(starts), list(ends), list(ready), list(order), state))
    return Decoded(starts, ends, ready, order, tuple(marks))


def place(
    shop: Shop,
    sequence: Sequence[int],
    starts: list[int],
    ends: list[int],
    ready_at: list[int],
    placed: list[int],
    gaps: tuple[list[list[int]], list[list[int]]],
    free: list[FreeTime] | None,
) -> None:
    """The one placement loop. Free time is either each machine's gaps in two flat sorted
    lists, the search and the placement inlined (small shops, decoded thousands of times by
    the search), or :class:`FreeTime` blocks (``free``, large shops). Both place every step
    identically."""
    gap_starts, gap_ends = gaps
    op_job, op_machine, op_dur, op_preds = shop.op_job, shop.op_machine, shop.op_dur, shop.op_preds
    release, slow = shop.job_release, shop.slow
    for op in sequence:
        ready = release[op_job[op]]
        ok = True
        for p in op_preds[op]:
            e = ends[p]
            if e < 0:
                ok = False
                break
            if e > ready:
                ready = e
        if not ok:
            continue
        ready_at[op] = ready
        m = op_machine[op]
        work, sl = op_dur[op], slow[m]
        if free is not None:
            slot = free[m].earliest(ready, work, sl)
            if slot is None:
                continue  # no room before the window closes: unscheduled
            start, end, k, i = slot
            free[m].take(k, i, start, end)
        else:
            gs, ge = gap_starts[m], gap_ends[m]
            i = bisect_right(ge, ready)
            count = len(gs)
            while i < count:
                start = gs[i]
                if start < ready:
                    start = ready
                end = start + work if sl is None else slowed_end(start, work, sl)
                if end <= ge[i]:
                    break
                i += 1
            else:
                continue  # no room before the window closes: unscheduled
            gap_start, gap_end = gs[i], ge[i]
            if start > gap_start:
                ge[i] = start
                if gap_end > end:
                    gs.insert(i + 1, end)
                    ge.insert(i + 1, gap_end)
            elif gap_end > end:
                gs[i] = end
            else:
                del gs[i], ge[i]
        starts[op] = start
        ends[op] = end
        placed.append(op)


def job_completions(shop: Shop, decoded: Decoded) -> list[int]:
    """Completion hour per job; -1 when a step of the job is unscheduled."""
    ends = decoded.ends
    out = []
    for ops in shop.job_ops:
        done = 0
        for op in ops:
            e = ends[op]
            if e < 0:
                done = -1
                break
            if e > done:
                done = e
        out.append(done)
    return out


Score = tuple[int, int, int, int, int]


def score(shop: Shop, decoded: Decoded, weights: Sequence[int] | None = None) -> Score:
    """Lower is better: (incomplete jobs, hours late of the jobs that must not be late, weighted
    total lateness, late jobs, makespan). ``weights[j]``: 0 for a job that must not be late
    (counted in the second key), else its weight in the third (1 = may slip, 2 = normal)."""
    due = shop.job_due
    incomplete = must = weighted = late = 0
    for j, done in enumerate(job_completions(shop, decoded)):
        if done < 0:
            incomplete += 1
            continue
        hours = done - due[j]
        if hours > 0:
            late += 1
            w = 2 if weights is None else weights[j]
            if w == 0:
                must += hours
            else:
                weighted += w * hours
    makespan = max(decoded.ends, default=0)
    return (incomplete, must, weighted, late, max(makespan, 0))
