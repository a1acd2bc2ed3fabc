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
- **Descent**: first improvement, in a seeded random order; equal scores are accepted now and
  then so the search can cross plateaus.
- **Kick** at a local optimum: a few random insertions of late jobs' steps, from the best plan.
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
KICK_SIZE = 3
SIDEWAYS = 0.2
"""Chance of accepting a move that leaves the score unchanged."""
RANDOM_MOVES = 6


@dataclass(frozen=True)
class Budget:
    evaluations: int = 20_000
    work: int = DEFAULT_WORK
    seconds: float = DEFAULT_SECONDS


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
        d, sc = evaluate(seq)
        scored.append((sc, name, seq, d))
    scored.sort(key=lambda t: (t[0], list(seeds).index(t[1])))
    best_score, best_name, best_seq, best_dec = scored[0]
    cur_score, cur_seq, cur_dec = best_score, list(best_seq), best_dec
    improvements = 0

    patience = 100 + 2 * n * n
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

    stopped = out_of_budget()
    while stopped is None:
        moved = False
        for move in _moves(shop, cur_seq, cur_dec, rng):
            cand = _apply(shop, cur_seq, move)
            if cand is None:
                continue
            d, sc = evaluate(cand)
            if sc < cur_score or (sc == cur_score and rng.random() < SIDEWAYS):
                moved = sc < cur_score
                cur_score, cur_seq, cur_dec = sc, cand, d
                if sc < best_score:
                    best_score, best_seq, best_dec = sc, cand, d
                    improvements += 1
                    last_gain = evaluations
                break
            stopped = out_of_budget()
            if stopped is not None:
                break
        if stopped is not None:
            break
        if not moved:  # a local optimum (or a sideways step): kick from the best plan
            cur_seq = _kick(shop, best_seq, best_dec, rng)
            cur_dec, cur_score = evaluate(cur_seq)
        stopped = out_of_budget()
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
    on_machine: dict[int, list[int]] = {}
    for op in dec.order:
        on_machine.setdefault(shop.op_machine[op], []).append(op)
    previous: dict[int, int] = {}
    for queue in on_machine.values():
        queue.sort(key=lambda o: starts[o])
        for a, b in pairwise(queue):
            previous[b] = a
    moves: list[Move] = []
    for j, ops in enumerate(shop.job_ops):
        last = max(ops, key=lambda o: ends[o])
        if ends[last] < 0:
            continue
        if ends[last] <= shop.job_due[j]:
            continue
        op = last
        for _ in range(len(ops)):
            if starts[op] > ready[op] and op in previous:  # it queued for its machine
                holder = previous[op]
                moves.append((op, holder, True))
                moves.append((holder, op, False))
            preds = shop.op_preds[op]
            if not preds:
                break
            op = max(preds, key=lambda p: ends[p])
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


def _kick(shop: Shop, seq: list[int], dec: Decoded, rng: random.Random) -> list[int]:
    """A few critical moves made blindly (a "large step"), from the best plan so far."""
    out = list(seq)
    moves = _moves(shop, out, dec, rng)
    made = 0
    size = rng.randint(2, KICK_SIZE + 1)
    for move in moves:
        cand = _apply(shop, out, move)
        if cand is not None:
            out = cand
            made += 1
            if made >= size:
                break
    return out
