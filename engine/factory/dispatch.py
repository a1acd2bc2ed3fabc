"""Dispatch rules: the classic priority rules a planner can pick, as step sequences.

Each rule runs a **non-delay** dispatch: whenever a machine can start work, it starts the
most urgent step that is ready for it at that moment (its job released, its predecessors
done). Urgency, lower first:

- ``EDD`` — the job's due date (ties: higher priority, earlier release, config order).
- ``ATC`` — apparent tardiness cost (Vepsalainen & Morton): ``(1/p) exp(-slack⁺ / (k p̄))``
  with ``slack = due - t - remaining work of the job``; largest index first, ``k`` = 2 (and 1
  and 3 on small shops, the best kept).
- ``MDD`` — modified due date of the job: ``max(due, t + remaining work)``.
- ``MOD`` — modified operation due date: ``max(op due, t + p)``, where the op due date spreads
  the job's release-to-due span over its steps in proportion to their work.

A rule produces the order in which steps were started; the schedule itself always comes from
``shop.decode`` (the simulator's placement rule, windows, slowdowns and down time included),
so a rule is compared with the spec's EDD list scheduler on exactly the same terms.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

from engine.factory.shop import Decoded, FreeTime, Shop

RULES = ("EDD", "ATC", "MDD", "MOD")

Priority = Callable[[int, int], float]


def dispatch(shop: Shop, rule: str, k: float = 2.0) -> list[int]:
    """The op sequence of a non-delay dispatch by ``rule`` (one of :data:`RULES`)."""
    return dispatch_decoded(shop, rule, k)[0]


def dispatch_decoded(shop: Shop, rule: str, k: float = 2.0) -> tuple[list[int], Decoded]:
    """The op sequence of a non-delay dispatch by ``rule``, and its schedule: the steps were
    placed by the decoder's own rule (earliest free start at or after ready) in the order they
    are returned, so this is ``decode(shop, sequence)`` without decoding it again (a test
    holds them equal)."""
    n = shop.n_ops
    op_job, op_dur, op_machine = shop.op_job, shop.op_dur, shop.op_machine
    due, release = shop.job_due, shop.job_release
    remaining = [sum(op_dur[o] for o in ops) for ops in shop.job_ops]
    priority = _priority(shop, rule, remaining, k)

    waiting = [len(p) for p in shop.op_preds]
    ready = [release[op_job[o]] for o in range(n)]
    n_machines = len(shop.machine_ids)
    pending: list[list[int]] = [[] for _ in range(n_machines)]
    for o in range(n):
        if waiting[o] == 0:
            pending[op_machine[o]].append(o)
    free = [FreeTime(lo, hi, shop.blocked[m]) for m, (lo, hi) in enumerate(shop.windows)]
    machine_free = [lo for lo, _ in shop.windows]
    # Each machine's next decision time, in a heap with lazy invalidation: an entry is current
    # while it equals ``when[m]``.
    when = [-1] * n_machines
    heap: list[tuple[int, int]] = []
    starts = [-1] * n
    ends = [-1] * n
    ready_at = [-1] * n

    def reschedule(m: int) -> None:
        queue = pending[m]
        if not queue:
            when[m] = -1
            return
        t = max(machine_free[m], min(map(ready.__getitem__, queue)))
        if t != when[m]:
            when[m] = t
            heapq.heappush(heap, (t, m))

    for m in range(n_machines):
        reschedule(m)
    order: list[int] = []
    while heap:
        t, m = heapq.heappop(heap)
        if when[m] != t:
            continue  # stale
        when[m] = -1
        queue = pending[m]
        op, best = -1, 0.0
        for o in queue:  # the most urgent ready step; ties: earlier due, then lower index
            if ready[o] > t:
                continue
            p = priority(o, t)
            if op < 0 or p < best or (p == best and (due[op_job[o]], o) < (due[op_job[op]], op)):
                op, best = o, p
        queue.remove(op)
        ready_at[op] = ready[op]
        slot = free[m].earliest(ready[op], op_dur[op], shop.slow[m])
        if slot is not None:
            start, end, blk, idx = slot
            free[m].take(blk, idx, start, end)
            machine_free[m] = max(machine_free[m], end)
            starts[op] = start
            ends[op] = end
            order.append(op)
            remaining[op_job[op]] -= op_dur[op]
            for s in shop.op_succs[op]:
                waiting[s] -= 1
                ready[s] = max(ready[s], end)
                if waiting[s] == 0:
                    sm = op_machine[s]
                    pending[sm].append(s)
                    if sm != m:
                        reschedule(sm)
        reschedule(m)
    placed = set(order)  # steps that found no room (and their successors) go last, in order
    sequence = order + [o for o in range(n) if o not in placed]
    return sequence, Decoded(starts, ends, ready_at, order)


def _priority(shop: Shop, rule: str, remaining: list[int], k: float) -> Priority:
    op_job, op_dur = shop.op_job, shop.op_dur
    due, release, prio = shop.job_due, shop.job_release, shop.job_priority
    if rule == "EDD":
        # due first; then higher priority (steps of 1e-3), then earlier release (< 1e-5 in all)
        return lambda o, t: due[op_job[o]] - prio[op_job[o]] * 1e-3 + release[op_job[o]] * 1e-9
    if rule == "MDD":
        return lambda o, t: max(due[op_job[o]], t + remaining[op_job[o]])
    if rule == "MOD":
        op_due = _operation_due_dates(shop)
        return lambda o, t: max(op_due[o], t + op_dur[o])
    if rule == "ATC":
        mean_p = sum(op_dur) / max(1, len(op_dur))

        def atc(o: int, t: int) -> float:
            j = op_job[o]
            slack = max(0.0, due[j] - t - remaining[j])
            return -math.exp(-slack / (k * mean_p)) / op_dur[o]

        return atc
    raise ValueError(f"unknown dispatch rule {rule!r} (one of {', '.join(RULES)})")


def _operation_due_dates(shop: Shop) -> list[float]:
    out = [0.0] * shop.n_ops
    for j, ops in enumerate(shop.job_ops):
        total = sum(shop.op_dur[o] for o in ops) or 1
        span = shop.job_due[j] - shop.job_release[j]
        done = 0
        for o in ops:
            done += shop.op_dur[o]
            out[o] = shop.job_release[j] + span * done / total
    return out
