"""The improvement search: iterated local search over step sequences, the simulator as judge.

A candidate plan is a sequence of steps; ``shop.decode`` (the simulator's own placement rule)
turns it into a schedule, and ``shop.score`` ranks schedules (incomplete jobs, lateness of the
jobs that must not be late, weighted total lateness, late jobs, makespan). No solver: this is
what-if re-simulation done systematically.

- **Start** from the best of the seeds (the spec's EDD list schedule and the dispatch rules).
- **Moves** aim at lateness. For each late job, walk back its critical chain (the step that
  finished last, and behind it whichever step it waited for: a machine or a predecessor);
  every step that queued for its machine gives two moves: *insert it before the step that held
  the machine*, or *insert that step after it* (an adjacent swap on the machine). A few random
  insertions keep the neighbourhood from being only greedy.
- **Descent**: first improvement, in a seeded random order, to a local optimum.
- **Kick**: a few critical moves made blindly from the "home" solution, then descend again.
  Home follows every result at least as good (a walk across plateaus), rarely a worse one, and
  goes back to the best after a long stall; kicks grow while nothing improves.
- **Budgets**: evaluations, placed steps (work: the same on any machine, so the result is
  deterministic) and wall time (a safety net only; when it trips the result says so); a stall
  limit of the order of the neighbourhood, and a lower bound that ends the search early.
- **Cost**: a memo of the scores tried, and decodes resumed from the base's marks (see
  :func:`improve`). Both are exact: they change how long a plan takes, never which plan.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

from engine.factory.shop import Decoded, Score, Shop, decode, place, score

DEFAULT_WORK = 600_000
"""Steps placed in total per search (about 0.6-1 s of Python on a 2-core machine)."""
DEFAULT_SECONDS = 1.5
KICK_SIZE = 2
MAX_KICK = 8
ACCEPT_WORSE = 0.03
"""Chance that a worse local optimum becomes the new home (diversification)."""
RANDOM_MOVES = 6
MARKS = 8
MARK_MIN = 8
"""A sequence the search moves to keeps the decoder's state every ``max(8, n / 8)`` steps;
its neighbours resume from the last one before their first change (on average half way)."""
MEMO_LIMIT = 50_000
"""Distinct sequences remembered per plan (at most about ``work`` integers in all)."""


@dataclass(frozen=True)
class Budget:
    evaluations: int = 20_000
    work: int = DEFAULT_WORK
    seconds: float = DEFAULT_SECONDS
    patience: int | None = None
    """Schedules tried without a gain before the search stops (default ``2 n² + 4 n``: the
    order of the number of insertion moves, so a 3x3 toy gives up after ~160, not ~360)."""


@dataclass(frozen=True)
class Outcome:
    sequence: list[int]
    decoded: Decoded
    score: Score
    seed_name: str
    """Which seed the best plan grew from."""
    evaluations: int
    improvements: int
    stopped_by: str
    """``converged`` (no lateness left, lateness at the lower bound, or no gain in the last
    ``2·n² + 4·n`` schedules for n steps), ``evaluations``, ``work`` or ``time``."""


def improve(
    shop: Shop,
    seeds: Mapping[str, Sequence[int]],
    *,
    weights: Sequence[int] | None = None,
    budget: Budget = Budget(),
    seed: int = 0,
    decoded: Mapping[str, Decoded] | None = None,
    memo: Memo | None = None,
) -> Outcome:
    """Search from ``seeds`` (name -> op sequence); deterministic for a given ``seed`` unless
    the wall-time safety net trips."""
    rng = random.Random(seed)
    deadline = time.perf_counter() + budget.seconds
    n = shop.n_ops
    evaluations = 0
    work = 0

    machines = len(shop.machine_ids)

    memo = Memo() if memo is None else memo
    every = max(MARK_MIN, n // MARKS)

    def evaluate(seq: list[int], base: Decoded | None = None, first: int = 0) -> Score:
        """The sequence's score, decoded once per distinct sequence (a third of the
        sequences a search tries are ones it tried before), from ``base``'s last mark at or
        before ``first``, the first position where ``seq`` differs from ``base``'s sequence
        (the steps before it are placed as they were). Every call counts as one evaluation
        and its work all the same: the budget, and so the plan, do not depend on what the
        memo holds or where a decode resumed."""
        nonlocal evaluations, work
        evaluations += 1
        work += n + 4 * machines + 20  # placements, plus the fixed cost of one decode
        key = tuple(seq)
        known = memo.get(key)
        if known is not None:
            return known
        sc = score(shop, decode(shop, seq, resume=base, first=first), weights)
        memo.put(key, sc)
        return sc

    def settle(seq: list[int], base: Decoded | None = None, first: int = 0) -> Decoded:
        """The schedule of a sequence the search moves to, with marks for its neighbours."""
        return decode(shop, seq, resume=base, first=first, every=every)

    scored = []
    for name, s in seeds.items():
        seq = list(s)
        if decoded is not None and name in decoded:
            d = decoded[name]
            sc = score(shop, d, weights)
        else:
            sc = evaluate(seq)
            d = settle(seq)
        scored.append((sc, name, seq, d))
    scored.sort(key=lambda t: (t[0], list(seeds).index(t[1])))
    best_score, best_name, best_seq, best_dec = scored[0]
    if not best_dec.marks:
        best_dec = settle(best_seq)
    improvements = 0
    patience = budget.patience if budget.patience is not None else 2 * n * n + 4 * n
    last_gain = 0
    floor = lower_bound(shop, weights)

    def out_of_budget() -> str | None:
        if _done(best_score) or best_score[:4] == floor[:4]:
            return "converged"
        if evaluations - last_gain > patience:
            return "converged"
        if evaluations >= budget.evaluations:
            return "evaluations"
        if work >= budget.work:
            return "work"
        if time.perf_counter() > deadline:
            return "time"
        return None

    def descend(seq: list[int], dec: Decoded, sc: Score) -> tuple[list[int], Decoded, Score]:
        """First-improvement descent over the critical moves, to a local optimum."""
        nonlocal best_score, best_seq, best_dec, improvements, last_gain
        while out_of_budget() is None:
            pos = _positions(seq)
            for move in _moves(shop, seq, dec, rng):
                made = _apply(shop, seq, pos, move)
                if made is None:
                    continue
                cand, first = made
                csc = evaluate(cand, dec, first)
                if csc < sc:
                    seq, dec, sc = cand, settle(cand, dec, first), csc
                    if sc < best_score:
                        best_score, best_seq, best_dec = sc, seq, dec
                        improvements += 1
                        last_gain = evaluations
                    break
                if out_of_budget() is not None:
                    return seq, dec, sc
            else:
                return seq, dec, sc  # no improving move: a local optimum
        return seq, dec, sc

    # Iterated local search: descend, then kick the "home" solution and descend again. Home
    # follows any result at least as good (a walk across plateaus), now and then a worse one,
    # and returns to the best after a long stall; kicks grow while nothing improves.
    home_seq, home_dec, home_score = descend(list(best_seq), best_dec, best_score)
    stall = 0
    while out_of_budget() is None:
        size = min(MAX_KICK, KICK_SIZE + stall // 25)
        seq = _kick(shop, home_seq, home_dec, rng, size)
        sc = evaluate(seq)
        dec = settle(seq)
        seq, dec, sc = descend(seq, dec, sc)
        if sc < home_score:
            stall = 0
        else:
            stall += 1
        if sc <= home_score or rng.random() < ACCEPT_WORSE:
            home_seq, home_dec, home_score = seq, dec, sc
        if stall and stall % 100 == 0:
            home_seq, home_dec, home_score = best_seq, best_dec, best_score
    stopped = out_of_budget() or "converged"
    return Outcome(
        sequence=best_seq,
        decoded=best_dec,
        score=best_score,
        seed_name=best_name,
        evaluations=evaluations,
        improvements=improvements,
        stopped_by=stopped,
    )


class Memo:
    """Scores of the sequences tried, shared by the searches of one plan (same shop, same
    weights): bounded, it stops learning when full rather than grow."""

    __slots__ = ("limit", "scores")

    def __init__(self, limit: int = MEMO_LIMIT) -> None:
        self.limit = limit
        self.scores: dict[tuple[int, ...], Score] = {}

    def get(self, key: tuple[int, ...]) -> Score | None:
        return self.scores.get(key)

    def put(self, key: tuple[int, ...], value: Score) -> None:
        if len(self.scores) < self.limit:
            self.scores[key] = value


def lower_bound(shop: Shop, weights: Sequence[int] | None = None) -> Score:
    """A score no sequence can beat: every step placed as early as its own predecessors allow
    on its machine's free time with nothing else placed (windows, down time and slowdown
    included). Placing any other work first, even another step of the same job, only moves a
    step later (the earliest free start can only be later, and a slowed finish is monotone in
    the start), so every job ends no earlier than this: its lateness, and whether it fits at
    all, bound the real ones from below. (Placing a whole job alone is not a bound: two of its
    parallel branches on one machine can end earlier in another order.)"""
    return score(shop, _alone(shop), weights)


def _alone(shop: Shop) -> Decoded:
    """Each step decoded on a fresh copy of its machine's free time, after its predecessors."""
    n = shop.n_ops
    starts, ends, ready = [-1] * n, [-1] * n, [-1] * n
    order: list[int] = []
    none: list[int] = []
    gap_starts = [none] * len(shop.gaps)
    gap_ends = [none] * len(shop.gaps)
    for ops in shop.job_ops:  # each job's steps in precedence order
        for op in ops:
            m = shop.op_machine[op]
            gap_starts[m], gap_ends[m] = list(shop.gaps[m][0]), list(shop.gaps[m][1])
            place(shop, (op,), starts, ends, ready, order, (gap_starts, gap_ends), None)
    return Decoded(starts, ends, ready, order)


def _done(s: Score) -> bool:
    return s[0] == 0 and s[1] == 0 and s[2] == 0


Move = tuple[int, int, bool]
"""(op, anchor op, before): put ``op`` right before (True) or right after (False) ``anchor``."""


def _moves(shop: Shop, seq: list[int], dec: Decoded, rng: random.Random) -> list[Move]:
    starts, ends, ready = dec.starts, dec.ends, dec.ready
    n_ops = shop.n_ops
    op_machine = shop.op_machine
    # The step that ran just before each one on its machine (-1: none). Steps of one machine
    # never share a start hour, so one sort by start orders every machine's queue.
    previous = [-1] * n_ops
    last_on = [-1] * len(shop.machine_ids)
    for op in sorted(dec.order, key=starts.__getitem__):
        m = op_machine[op]
        previous[op] = last_on[m]
        last_on[m] = op
    moves: list[Move] = []
    seen: set[Move] = set()
    walked = [False] * n_ops
    due = shop.job_due
    for j, ops in enumerate(shop.job_ops):
        last = max(ops, key=ends.__getitem__)
        if ends[last] < 0 or ends[last] <= due[j]:
            continue
        # Walk the late job's critical path back from its last step: a block of steps that ran
        # back to back on one machine (each queued behind the one before), then the
        # predecessor the block's first step waited for, and so on. The walk from a step is
        # always the same, so once it reaches a step an earlier walk went through, every move
        # left is one that walk already gave: stop there (late jobs share most of their paths).
        op = last
        for _ in range(n_ops):
            if walked[op]:
                break
            block = [op]
            while len(block) < n_ops:
                cur = block[-1]
                holder = previous[cur]
                if holder < 0 or starts[cur] <= ready[cur] or ends[holder] != starts[cur]:
                    break
                block.append(holder)
            for o in block:
                walked[o] = True
            candidates = [m for a, b in pairwise(block) for m in ((a, b, True), (b, a, False))]
            candidates += [(o, block[-1], True) for o in block[:-2]]  # to the block's front
            for move in candidates:
                if move not in seen:
                    seen.add(move)
                    moves.append(move)
            first = block[-1]
            preds = [p for p in shop.op_preds[first] if ends[p] == starts[first]]
            if not preds:
                break
            op = preds[0]
    rng.shuffle(moves)
    n = len(seq)
    for _ in range(RANDOM_MOVES):
        a, b = seq[rng.randrange(n)], seq[rng.randrange(n)]
        if a != b:
            moves.append((a, b, rng.random() < 0.5))
    return moves


def _positions(seq: Sequence[int]) -> list[int]:
    """``pos[op]``: where ``op`` stands in ``seq``."""
    pos = [0] * len(seq)
    for i, op in enumerate(seq):
        pos[op] = i
    return pos


def _apply(shop: Shop, seq: list[int], pos: list[int], move: Move) -> tuple[list[int], int] | None:
    """The sequence with the move made and the first position where it differs from ``seq``,
    or None when the move would break precedence or change nothing. ``pos``: positions in
    ``seq`` (precedence-feasible, as every sequence here is)."""
    op, anchor, before = move
    if op == anchor:
        return None
    i = pos[op]
    at = pos[anchor] if before else pos[anchor] + 1  # op goes just before seq[at]
    if at == i or at == i + 1:
        return None
    if any(pos[p] >= at for p in shop.op_preds[op]):
        return None
    if any(pos[s] < at for s in shop.op_succs[op]):
        return None
    if at < i:
        return [*seq[:at], op, *seq[at:i], *seq[i + 1 :]], at
    return [*seq[:i], *seq[i + 1 : at], op, *seq[at:]], i


def _kick(shop: Shop, seq: list[int], dec: Decoded, rng: random.Random, size: int) -> list[int]:
    """``size`` critical moves made blindly (a "large step"), from ``seq``."""
    out = list(seq)
    made = 0
    for move in _moves(shop, out, dec, rng):
        moved = _apply(shop, out, _positions(out), move)
        if moved is not None:
            out = moved[0]
            made += 1
            if made >= size:
                break
    return out
