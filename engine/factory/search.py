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
  deterministic) and wall time (a safety net only; when it trips the result says so).
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

from engine.factory.shop import Decoded, Score, Shop, decode, score

DEFAULT_WORK = 600_000
"""Steps placed in total per search (about 0.6-1 s of Python on a 2-core machine)."""
DEFAULT_SECONDS = 1.5
KICK_SIZE = 2
MAX_KICK = 8
ACCEPT_WORSE = 0.03
"""Chance that a worse local optimum becomes the new home (diversification)."""
RANDOM_MOVES = 6


@dataclass(frozen=True)
class Budget:
    evaluations: int = 20_000
    work: int = DEFAULT_WORK
    seconds: float = DEFAULT_SECONDS
    patience: int | None = None
    """Schedules tried without a gain before the search stops (default ``200 + 2 n²``)."""


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
    """``converged`` (no lateness left, or no gain in the last ``100 + 2·steps²`` schedules),
    ``evaluations``, ``work`` or ``time``."""


def improve(
    shop: Shop,
    seeds: Mapping[str, Sequence[int]],
    *,
    weights: Sequence[int] | None = None,
    budget: Budget = Budget(),
    seed: int = 0,
    decoded: Mapping[str, Decoded] | None = None,
) -> Outcome:
    """Search from ``seeds`` (name -> op sequence); deterministic for a given ``seed`` unless
    the wall-time safety net trips."""
    rng = random.Random(seed)
    deadline = time.perf_counter() + budget.seconds
    n = shop.n_ops
    evaluations = 0
    work = 0

    machines = len(shop.machine_ids)

    def evaluate(seq: list[int]) -> tuple[Decoded, Score]:
        nonlocal evaluations, work
        evaluations += 1
        work += n + 4 * machines + 20  # placements, plus the fixed cost of one decode
        d = decode(shop, seq)
        return d, score(shop, d, weights)

    scored = []
    for name, s in seeds.items():
        seq = list(s)
        if decoded is not None and name in decoded:
            d = decoded[name]
            sc = score(shop, d, weights)
        else:
            d, sc = evaluate(seq)
        scored.append((sc, name, seq, d))
    scored.sort(key=lambda t: (t[0], list(seeds).index(t[1])))
    best_score, best_name, best_seq, best_dec = scored[0]
    improvements = 0
    patience = budget.patience if budget.patience is not None else 200 + 2 * n * n
    last_gain = 0

    def out_of_budget() -> str | None:
        if _done(best_score):
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
            for move in _moves(shop, seq, dec, rng):
                cand = _apply(shop, seq, move)
                if cand is None:
                    continue
                d, csc = evaluate(cand)
                if csc < sc:
                    seq, dec, sc = cand, d, csc
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
        dec, sc = evaluate(seq)
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


def _done(s: Score) -> bool:
    return s[0] == 0 and s[1] == 0 and s[2] == 0


Move = tuple[int, int, bool]
"""(op, anchor op, before): put ``op`` right before (True) or right after (False) ``anchor``."""


def _moves(shop: Shop, seq: list[int], dec: Decoded, rng: random.Random) -> list[Move]:
    starts, ends, ready = dec.starts, dec.ends, dec.ready
    n_ops = shop.n_ops
    on_machine: dict[int, list[int]] = {}
    for op in dec.order:
        on_machine.setdefault(shop.op_machine[op], []).append(op)
    previous: dict[int, int] = {}
    for queue in on_machine.values():
        queue.sort(key=lambda o: starts[o])
        for a, b in pairwise(queue):
            previous[b] = a
    moves: list[Move] = []
    seen: set[Move] = set()
    for j, ops in enumerate(shop.job_ops):
        last = max(ops, key=lambda o: ends[o])
        if ends[last] < 0 or ends[last] <= shop.job_due[j]:
            continue
        # Walk the late job's critical path back from its last step: a block of steps that ran
        # back to back on one machine (each queued behind the one before), then the
        # predecessor the block's first step waited for, and so on.
        op = last
        for _ in range(n_ops):
            block = [op]
            while len(block) < n_ops:
                cur = block[-1]
                holder = previous.get(cur)
                if holder is None or starts[cur] <= ready[cur] or ends[holder] != starts[cur]:
                    break
                block.append(holder)
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


def _apply(shop: Shop, seq: list[int], move: Move) -> list[int] | None:
    """The sequence with the move made, or None when it would break precedence."""
    op, anchor, before = move
    if op == anchor:
        return None
    out = [o for o in seq if o != op]
    at = out.index(anchor) + (0 if before else 1)
    position = {o: i for i, o in enumerate(out)}
    if any(position[p] >= at for p in shop.op_preds[op]):
        return None
    if any(position[s] < at for s in shop.op_succs[op]):
        return None
    out.insert(at, op)
    return out if out != seq else None


def _kick(shop: Shop, seq: list[int], dec: Decoded, rng: random.Random, size: int) -> list[int]:
    """``size`` critical moves made blindly (a "large step"), from ``seq``."""
    out = list(seq)
    made = 0
    for move in _moves(shop, out, dec, rng):
        cand = _apply(shop, out, move)
        if cand is not None:
            out = cand
            made += 1
            if made >= size:
                break
    return out
