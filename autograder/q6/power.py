"""The documented error rates of the sampler tests, computed from their designs.

False failures: a correct sampler's PIT values are i.i.d. Uniform(0, 1), so the exact KS test
at level alpha fails it with probability at most alpha (plus float rounding of the laws, below
1e-9 here).  The support check and the seeded match never fail a correct sampler.

Power: on a ``profile`` model every context has the same sorted law, so a sampler that is
wrong the same way in every context gives i.i.d. PIT values with some CDF G.  If
sup |G(u) - u| >= delta, the DKW inequality bounds the chance that the empirical CDF of n
values stays within delta - c of G, c being the KS critical value:
P(pass) <= 2 exp(-2 n (delta - c)^2).  ``dkw_power`` is that proven lower bound;
``simulated_power`` the exact figure by simulation.  A temperature off by a factor f turns
the reference law p into p^(1/f) (renormalised on the survivors), whose delta is computed
exactly; a shift of total variation d between the head and the tail of the law (monotone in
rank) has delta = d.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autograder.q6.designed import profile_probs


def reference_law(spec: dict, temperature: float | None) -> np.ndarray:
    """The sorted top-k law a correct sampler draws from on a profile model."""
    p = profile_probs(int(spec["top_k"]), float(spec["head"]), float(spec["spread"]), float(spec["beyond"]))
    p = p[: int(spec["top_k"])]
    # The logits are design_temperature * log p; the sampler divides them by its temperature.
    p = p ** (float(spec.get("design_temperature", 1.0)) / (1.0 if temperature is None else temperature))
    return p / p.sum()


def pit_delta(p: np.ndarray, q: np.ndarray) -> float:
    """sup |G(u) - u| for draws from q judged against p (both sorted by p, descending)."""
    return float(np.max(np.abs(np.cumsum(q) - np.cumsum(p))))


def tempered(p: np.ndarray, factor: float) -> np.ndarray:
    w = p ** (1.0 / factor)
    return w / w.sum()


def _ks_critical(alpha: float, n: int) -> float:
    """The exact KS critical value; scipy is imported on first use only (see ``stats.ks_uniform_pvalue``)."""
    from scipy import stats as sps

    return float(sps.kstwo.isf(alpha, n))


def dkw_power(delta: float, n: int, alpha: float) -> float:
    crit = _ks_critical(alpha, n)
    if delta <= crit:
        return 0.0
    return max(0.0, 1.0 - 2.0 * np.exp(-2.0 * n * (delta - crit) ** 2))


def simulated_power(p: np.ndarray, q: np.ndarray, n: int, alpha: float, reps: int = 2000, seed: int = 0) -> float:
    rng = np.random.Generator(np.random.PCG64(seed))
    edges = np.concatenate([[0.0], np.cumsum(p)])
    crit = _ks_critical(alpha, n)
    i = np.arange(1, n + 1)
    hits = 0
    for _ in range(reps):
        r = rng.choice(len(p), size=n, p=q)
        u = np.sort(edges[r] + rng.random(n) * p[r])
        hits += max((i / n - u).max(), (u - (i - 1) / n).max()) > crit
    return hits / reps


@dataclass(frozen=True)
class PowerReport:
    draws: int
    alpha: float
    delta_hot: float          # temperature 10% too high
    delta_cold: float         # temperature 10% too low
    power_hot: float          # DKW-proven lower bounds
    power_cold: float
    power_tv: float           # a head-tail shift of total variation 0.1

    def line(self) -> str:
        return (f"n={self.draws} alpha={self.alpha:.1e}; proven power: T x1.1 {self.power_hot:.3f} "
                f"(delta {self.delta_hot:.3f}), T x0.9 {self.power_cold:.3f} (delta {self.delta_cold:.3f}), "
                f"TV 0.1 head-tail {self.power_tv:.3f}")


def sampler_power(spec: dict, temperature: float | None, draws: int, alpha: float) -> PowerReport | None:
    """Power of a sampler test on a profile model; None for models without a fixed profile."""
    if spec.get("kind") != "profile":
        return None
    p = reference_law(spec, temperature)
    hot, cold = pit_delta(p, tempered(p, 1.1)), pit_delta(p, tempered(p, 0.9))
    return PowerReport(draws, alpha, hot, cold, dkw_power(hot, draws, alpha), dkw_power(cold, draws, alpha),
                       dkw_power(0.1, draws, alpha))


def design_power(assignment, spec) -> PowerReport | None:
    """The design power of a statistical graded test whose sampler runs on a profile model, else None.

    ``spec`` is the test's ``TestSpec``; its ``params.sampler`` gives the model and the draws
    (runs x length), as ``judge.sampler_law`` pools them.
    """
    sampler = spec.params.get("sampler")
    if not spec.statistical or not isinstance(sampler, dict):
        return None
    draws = int(sampler["runs"]) * int(sampler["length"])
    return sampler_power(assignment.model(sampler["model"]), sampler.get("temperature"), draws,
                         assignment.alpha_per_test)
