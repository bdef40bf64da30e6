"""The statistics of the grader, in one place: tests for samplers whose every draw has its own known law.

Under a correct sampler, the randomized probability integral transform (PIT) of each draw,
taken in order of decreasing probability, is exactly Uniform(0, 1) given everything before it,
so the pooled values are i.i.d. uniform whatever the contexts were.  The Kolmogorov-Smirnov
test with its exact null distribution then has false-failure probability at most ``alpha``.
Ordering by probability makes the transform sensitive to the common mistakes: too cold or
greedy piles values near 0, too hot spreads them toward 1.

Power: draws that are i.i.d. with a PIT CDF G, sup |G(u) - u| >= delta, pass the KS test of n
draws with probability at most 2 exp(-2 n (delta - c)^2), c the KS critical value (the DKW
inequality); ``dkw_power`` is that proven lower bound on the power, ``simulated_power`` the
figure by simulation.  ``bonferroni_share`` splits a submission's error budget over its
statistical tests, ``log_repeat_probability`` bounds the chance of two identical runs, and
``effective_inverse_temperature`` says what temperature a sampler's draws look like.  How the
laws themselves are built (the models', the designed ones) is the assignment's, in ``autograder/q6/``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def randomized_pit(laws: np.ndarray, tokens: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """PIT values of ``tokens[i]`` under ``laws[i]`` (rows sum to one), probability-descending order.

    Tokens are ordered by decreasing probability, ties by increasing id; a drawn token's value
    is the mass ranked before it plus an independent uniform share of its own mass.  Only a row's
    positive entries can rank before a token, so each row is reduced to them first (a top-k law
    has k of V), and their mass is summed exactly (``math.fsum``): the same value on any machine.
    """
    laws = np.asarray(laws, dtype=np.float64)
    tokens = np.asarray(tokens, dtype=np.int64)
    shares = rng.random(len(tokens))
    out = np.empty(len(tokens))
    for i, (row, token) in enumerate(zip(laws, tokens)):
        support = np.flatnonzero(row > 0)                                # ids, ascending
        p, px = row[support], row[token]
        ties = np.count_nonzero((p == px) & (support < token)) if px > 0 else 0
        out[i] = math.fsum(p[p > px]) + (ties + shares[i]) * px
    return np.minimum(out, 1.0)


def ks_uniform_pvalue(u: np.ndarray) -> float:
    """Exact two-sided Kolmogorov-Smirnov p-value of ``u`` against Uniform(0, 1)."""
    from scipy import stats as sps  # here: ~30 MiB that a grade whose draws match the reference never needs

    return float(sps.kstest(u, "uniform", method="exact").pvalue)


def effective_inverse_temperature(logps: list[np.ndarray], drawn: np.ndarray) -> float:
    """Maximum-likelihood beta such that the draws look like p**beta (renormalised on each row's support).

    ``logps[i]`` holds the reference log-probabilities of row i's support, ``drawn[i]`` the
    index (into that support) of the drawn token.  beta = 1 for a correct sampler; a student
    whose temperature is off by a factor c gives beta near 1/c.
    """
    def score(beta: float) -> float:
        total = 0.0
        for lp, j in zip(logps, drawn):
            w = np.exp(beta * (lp - lp.max()))
            total += lp[j] - float(np.dot(w, lp) / w.sum())
        return total

    lo, hi = 1e-3, 1e3
    if score(hi) > 0:
        return float("inf")
    if score(lo) < 0:
        return 0.0
    for _ in range(60):
        mid = np.sqrt(lo * hi)
        lo, hi = (mid, hi) if score(mid) > 0 else (lo, mid)
    return float(np.sqrt(lo * hi))


def inverse_temperature_interval(logps: list[np.ndarray], beta: float, z: float = 1.96) -> tuple[float, float]:
    """An approximate ``z``-sigma interval for ``effective_inverse_temperature``'s beta: beta -+ z / sqrt(I),
    I the Fisher information of the draws, sum over rows of the variance of log p under p**beta."""
    info = 0.0
    for lp in logps:
        w = np.exp(beta * (lp - lp.max()))
        w /= w.sum()
        mean = float(np.dot(w, lp))
        info += float(np.dot(w, (lp - mean) ** 2))
    if not (info > 0 and math.isfinite(beta)):
        return 0.0, float("inf")
    half = z / math.sqrt(info)
    return max(beta - half, 0.0), beta + half


def pit_delta(p: np.ndarray, q: np.ndarray) -> float:
    """sup |G(u) - u| for draws from q judged against p (both sorted by p, descending)."""
    return float(np.max(np.abs(np.cumsum(q) - np.cumsum(p))))


def tempered(p: np.ndarray, factor: float) -> np.ndarray:
    """The law ``p`` at a temperature ``factor`` times its own: p^(1/factor), renormalised."""
    w = p ** (1.0 / factor)
    return w / w.sum()


def ks_critical(alpha: float, n: int) -> float:
    """The exact KS critical value of n draws at level alpha; scipy is imported on first use only
    (see ``ks_uniform_pvalue``)."""
    from scipy import stats as sps

    return float(sps.kstwo.isf(alpha, n))


def dkw_power(delta: float, n: int, alpha: float) -> float:
    """The proven power of the KS test of n draws at level alpha against a PIT CDF ``delta`` from uniform."""
    crit = ks_critical(alpha, n)
    if delta <= crit:
        return 0.0
    return max(0.0, 1.0 - 2.0 * np.exp(-2.0 * n * (delta - crit) ** 2))


def simulated_power(p: np.ndarray, q: np.ndarray, n: int, alpha: float, reps: int = 2000, seed: int = 0) -> float:
    """The KS test's power, by simulation, for n draws from ``q`` judged against ``p`` (both sorted by p)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    edges = np.concatenate([[0.0], np.cumsum(p)])
    crit = ks_critical(alpha, n)
    i = np.arange(1, n + 1)
    hits = 0
    for _ in range(reps):
        r = rng.choice(len(p), size=n, p=q)
        u = np.sort(edges[r] + rng.random(n) * p[r])
        hits += max((i / n - u).max(), (u - (i - 1) / n).max()) > crit
    return hits / reps


def bonferroni_share(error_budget: float, tests: int) -> float:
    """Each statistical test's false-failure level: the submission's error budget split evenly."""
    return error_budget / max(tests, 1)


def log_repeat_probability(p: np.ndarray, length: int) -> float:
    """The log of the probability that two runs of ``length`` i.i.d. draws from ``p`` are identical."""
    return length * math.log(float(np.sum(p ** 2)))


@dataclass(frozen=True)
class UniformityVerdict:
    passed: bool
    pvalue: float
    alpha: float
    draws: int


def uniformity_test(u: np.ndarray, alpha: float) -> UniformityVerdict:
    p = ks_uniform_pvalue(u)
    return UniformityVerdict(passed=p >= alpha, pvalue=p, alpha=alpha, draws=len(u))
