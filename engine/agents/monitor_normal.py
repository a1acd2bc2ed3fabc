"""Models of normal operation: what each channel should read given the others, learned from the
stream's own warm-up. Their residuals are the monitor's level channels.

``CrossRegression`` (any stream): each signal regressed on all the others (ridge, on the
warm-up's window means, standardised). What the others explain — a load change moving current
and temperature together, two accelerometers stepping together — cancels; what they do not is
left in the residual. Measured on SKAB (``bench/real_pumps.py``): against per-signal levels it
cuts the anomaly-free file's false alarms several-fold for the same recall on valve1; a PCA
T² model on the same windows was worse on both (docs/plant.md has the figures).

``monitor_pump.PumpModel`` (a pump's own signals): the pump and system curves, power, current,
vibration and the bearing's thermal lag, learned from the warm-up and from operator manoeuvres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.agents.monitor_bank import F64, Layout, Sizes

B = npt.NDArray[np.bool_]

RIDGE = 0.1
"""Ridge penalty of the cross-regression (per window-mean sample, standardised units): keeps
the fit to what the warm-up clearly shows."""


@dataclass(slots=True, eq=False)  # identity, as before: arrays do not compare as a whole
class Observation:
    """What a model of normal reports for rows lo:hi at one sample: its residuals (``level``,
    n × R), what the warm-up keeps of the sample (``record``), which residuals are held this
    sample (``hold``, n × R; None: none), whether the machine runs (``running``, n; None: all),
    which samples may be part of a warm-up (``warm_ok``) and the model's own uncertainty at
    this operating point in residual units (``extra``, n × R; None: none)."""

    level: F64
    record: F64
    hold: B | None
    running: B | None
    warm_ok: B
    extra: F64 | None = None


class CrossRegression:
    """Any stream: residual of each signal against the others (vectorised over assets)."""

    level_detector = "cross-regression"

    def __init__(
        self, raw_names: tuple[str, ...], sizes: Sizes, capacity: int, *, cross: bool = True
    ) -> None:
        """``cross=False``: no regression, each residual is its signal less its warm-up mean
        (the per-signal alternative, measured beside it by ``bench/real_pumps.py``)."""
        self.raw_names = raw_names
        self.cross = cross
        if not cross:
            self.level_detector = "per-signal"
        self.sz = sizes
        S = self.S = len(raw_names)
        self.T = np.zeros((capacity, S, S))
        self.c = np.zeros((capacity, S))
        self.constant = np.zeros((capacity, S), dtype=bool)

    def layout(self) -> Layout:
        S = self.S
        return Layout(
            raw_names=self.raw_names,
            level_names=self.raw_names,
            adaptive=(True,) * S,
            sensor=(True,) * S,
            relative_noise=(False,) * S,
            limits=(),
            families=(frozenset(),) * (2 * S),
        )

    def grow(self, cap: int) -> None:
        old = self.T.shape[0]
        if cap <= old:
            return
        for name in ("T", "c", "constant"):
            a = getattr(self, name)
            new = np.zeros((cap, *a.shape[1:]), dtype=a.dtype)
            new[:old] = a
            setattr(self, name, new)

    def reset_row(self, i: int) -> None:
        self.T[i] = 0.0
        self.c[i] = 0.0
        self.constant[i] = False

    def observe(self, lo: int, hi: int, x: F64, missing: B | None, alarmed: B) -> Observation:
        level = np.einsum("ats,as->at", self.T[lo:hi], x)
        level += self.c[lo:hi]
        return Observation(level, x, None, None, self._ones(hi - lo))

    def _ones(self, n: int) -> B:
        return np.ones(n, dtype=bool)

    def fit(self, i: int, rec: F64) -> tuple[F64, F64]:
        """Fit row i on its warm-up rows; returns (level series, level floors)."""
        S, w = self.S, self.sz.w
        mu = rec.mean(axis=0)
        sd = rec.std(axis=0)
        const = sd <= 1e-12 * np.maximum(1.0, np.abs(mu))
        sdn = np.where(const, 1.0, sd)
        z = (rec - mu) / sdn
        z[:, const] = 0.0
        cs = np.cumsum(np.vstack([np.zeros(S), z]), axis=0)
        m = (cs[w:] - cs[:-w]) / w
        coef = np.zeros((S, S))
        live = np.flatnonzero(~const)
        for c in live if self.cross else ():
            others = live[live != c]
            if others.size == 0:
                continue
            a = m[:, others]
            lhs = a.T @ a + len(a) * RIDGE * np.eye(others.size)
            coef[c, others] = np.linalg.solve(lhs, a.T @ m[:, c])
        t = (np.eye(S) - coef) * (sdn[:, None] / sdn[None, :])
        self.T[i] = t
        self.c[i] = -t @ mu
        self.constant[i] = const
        level = rec @ t.T + self.c[i]
        floors = np.where(const, np.inf, 0.0)
        return level, floors
