"""Candidate mistakes of question 6, computed from the same model and input as the expected answer.

A wrong answer is compared with each candidate; a diagnosis (a key of ``autograder.q6.diagnoses``)
is reported only when the answer matches one, by these rules:

- log-likelihood: the value is within the check's float32 tolerance of a candidate (a base
  quantity, optionally under one or two transforms, ``likelihood_candidates``) and not within it
  of the right value.  With several wrong texts, the candidates every one of them matches are
  preferred.  Several matches: the simplest (fewest atoms) win; equally simple ones are all
  named, and the first in table order gives the key.
- temperature_scale: the returned law is within the check's total-variation tolerance of a
  candidate law; the closest one is named.
- a sampler's draws (``fitting_laws``): the draws failed the exact KS test against the right law,
  and their PIT values under a candidate law pass a KS test at ``FIT_LEVEL``; the best fitting
  candidate is named.  Greedy decoding is named when every draw was its row's most likely token
  and a correct sampler would do that with probability below the test's alpha.
- classification: the labels follow a threshold rule on the reference log-likelihoods
  (``threshold_rule``).

Nothing here changes a score: it runs only after a check has failed.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from autograder import stats
from autograder.q6 import laws
from autograder.q6.diagnoses import LIKELIHOOD_TRANSFORMS, likelihood_key
from autograder.q6.drivers import top_k_filter
from autograder.q6.vocabulary import END_OF_TEXT_ID, VOCAB_SIZE

RERUN_MAX_TOKENS = 64   # bases that rerun the model on changed inputs hold (T, V) float64 rows: short texts only
FIT_LEVEL = 0.01   # a candidate law "fits" draws whose KS p-value under it is at least this
_EXCLUSIVE = ({"mean-not-sum", "mean-over-length"}, {"half", "double"})


@torch.no_grad()
def _raw_target_logits(model64, tokens: np.ndarray) -> float:
    """Sum over t = 1..T-1 of the raw logit of x_t at position t - 1 (no normalization)."""
    ids = torch.as_tensor(tokens, dtype=torch.long).view(1, -1)
    total = 0.0
    for a, logits in model64.chunked_logits(ids, 64):
        rows = logits[0].double()                                   # (c, V) positions a .. a + c - 1
        targets = ids[0, a + 1 : a + 1 + rows.shape[0]]
        total += float(rows[: targets.numel()].gather(1, targets.view(-1, 1)).sum())
    return total


@torch.no_grad()
def _sum_with(model64, tokens: np.ndarray, **inputs: str) -> float:
    """The right sum, from logits the model gives with changed ``inputs``: "positions" 1..T
    (position_ids off by one) or "token_types" zeros (token_type_ids given)."""
    ids = torch.as_tensor(tokens, dtype=torch.long).view(1, -1)
    extra = {}
    if "positions" in inputs:
        extra["position_ids"] = torch.arange(1, ids.shape[1] + 1).view(1, -1)
    if "token_types" in inputs:
        extra["token_type_ids"] = torch.zeros_like(ids)
    logp = torch.log_softmax(model64(ids, **extra)[0][0, :-1].double(), dim=-1)
    return float(logp.gather(1, ids[0, 1:].view(-1, 1)).sum())


def _sum_of(model64, tokens: np.ndarray) -> float:
    if tokens.size < 2:
        return 0.0
    _, nxt = laws.position_logprobs(model64, tokens)
    return float(nxt[:-1].sum())


def likelihood_candidates(model64, tokens: np.ndarray, terms: np.ndarray, own: np.ndarray) -> list[tuple[str, int, float]]:
    """(key, atoms, value) of every candidate mistake for the text ``tokens`` (T,), simplest first."""
    T, total, n = tokens.size, float(terms.sum()), max(terms.size, 1)
    bases: list[tuple[str | None, float, int]] = [
        (None, total, n),
        ("unshifted", float(own.sum()), T),
        ("last-dropped", total - float(terms[-1]) if terms.size else total, max(n - 1, 1)),
        ("first-token-eot", _sum_of(model64, np.concatenate([[END_OF_TEXT_ID], tokens])), T),
        ("first-token-uniform", total - math.log(VOCAB_SIZE), T),
        ("raw-logits", _raw_target_logits(model64, tokens), n),
        ("tail-text", _sum_of(model64, tokens[1:]), max(T - 2, 1)),
    ]
    if 2 <= T <= RERUN_MAX_TOKENS:
        bases += [("positions-shifted", _sum_with(model64, tokens, positions="1..T"), n),
                  ("token-types-zero", _sum_with(model64, tokens, token_types="zeros"), n)]
    ops: dict[str, Callable[[float, int], float]] = {
        "sign": lambda v, k: -v, "mean-not-sum": lambda v, k: v / k, "mean-over-length": lambda v, k: v / T,
        "bits": lambda v, k: v / math.log(2), "half": lambda v, k: v / 2, "double": lambda v, k: 2 * v,
    }
    out = []
    for size in range(3):
        for base, value, count in bases:
            n_ops = size - (base is not None)
            if n_ops < 0:
                continue
            for combo in itertools.combinations(LIKELIHOOD_TRANSFORMS, n_ops):
                if (base is None and not combo) or any(pair <= set(combo) for pair in _EXCLUSIVE):
                    continue
                v = value
                for op in combo:
                    v = ops[op](v, count)
                out.append((likelihood_key(base, combo), size, v))
    return out


def likelihood_hits(value: float, reference: float, tol: float,
                    candidates: list[tuple[str, int, float]]) -> list[tuple[str, int]]:
    """(key, atoms) of every candidate ``value`` matches and the right value does not."""
    return [(key, size) for key, size, v in candidates
            if math.isfinite(v) and abs(value - v) <= tol and abs(reference - v) > tol]


def simplest(hits: list[tuple[str, int]]) -> list[str]:
    """The keys of the hits with the fewest atoms, in table order (empty: no hit)."""
    fewest = min((size for _, size in hits), default=0)
    return [key for key, size in hits if size == fewest]


def common_hits(per_text: list[list[tuple[str, int]]]) -> list[str]:
    """The simplest keys every wrong text matches; else those of the first wrong text alone."""
    if not per_text:
        return []
    shared = set.intersection(*(set(k for k, _ in hits) for hits in per_text))
    both = [(k, s) for k, s in per_text[0] if k in shared]
    return simplest(both or per_text[0])


@torch.no_grad()
def _h2_variant(model, past, first: torch.Tensor, top_k: int, temperature: float, *,
                second_top_k: int | None = None, first_prob: bool = True, context: bool = True) -> torch.Tensor:
    """``laws.horizon2_logits`` with one piece changed: the second step's cut, the factor p(t), the past."""
    survivors = torch.nonzero(first > laws.NEG).flatten()
    k = survivors.numel()
    p1 = torch.softmax(first, dim=-1)[survivors] if first_prob else torch.ones(k, dtype=first.dtype)
    if context:
        logits2, _ = model(survivors.view(k, 1), past=[layer.expand(-1, k, -1, -1, -1) for layer in past])
    else:
        logits2, _ = model(survivors.view(k, 1))
    p2 = torch.softmax(top_k_filter(logits2[:, -1, :], top_k if second_top_k is None else second_top_k).to(first.dtype), dim=-1)
    marg = torch.logsumexp(torch.log(p1.unsqueeze(1) * p2 + laws.SCAFFOLD_EPS) / temperature, dim=-1)
    out = torch.full_like(first, laws.NEG)
    out[survivors] = marg
    return out


def temperature_candidates(model, past, filtered: torch.Tensor, top_k: int, temperature: float,
                           horizon: int) -> dict[str, torch.Tensor]:
    """The laws (1, V) float64 that common wrong temperature_scale implementations induce."""
    f = filtered.double()
    if horizon == 1:
        return {
            "temperature:ignored": torch.softmax(f, -1),
            "temperature:inverted": torch.softmax(f * temperature, -1),
            "temperature:squared": torch.softmax(f / temperature ** 2, -1),
            "temperature:probabilities": torch.softmax(torch.softmax(f / temperature, -1), -1),
        }
    first = filtered[0]
    variants = {
        "horizon2:no-top-k-second": dict(second_top_k=0),
        "horizon2:missing-first-prob": dict(first_prob=False),
        "horizon2:context-ignored": dict(context=False),
    }
    out = {"horizon2:scaled-after-marginal": torch.softmax(f / temperature, -1)}
    for key, change in variants.items():
        out[key] = torch.softmax(_h2_variant(model, past, first, top_k, temperature, **change).double(), -1)[None]
    return out


@dataclass(frozen=True)
class Fit:
    key: str
    pvalue: float


def fitting_laws(candidates: dict[str, Callable[[np.ndarray], np.ndarray]], runs: list[np.ndarray], start: int,
                 seed: int) -> list[Fit]:
    """The candidate laws the draws fit (KS p-value >= ``FIT_LEVEL``), best first.

    ``runs`` holds each run's (T,) tokens, drawn from position ``start`` on; ``candidates`` maps
    a key to a function giving, for one run's tokens, that law's (T - start, V) rows.
    """
    fits = []
    for key, rows_of in candidates.items():
        rng = np.random.Generator(np.random.PCG64(seed))
        pit = np.concatenate([stats.randomized_pit(rows_of(tokens), tokens[start:], rng) for tokens in runs])
        p = stats.ks_uniform_pvalue(pit)
        if p >= FIT_LEVEL:
            fits.append(Fit(key, p))
    return sorted(fits, key=lambda f: -f.pvalue)


def sampler_candidate_settings(temperature: float | None, horizon: int) -> dict[str, tuple[float | None, int]]:
    """Candidate (temperature, horizon) settings of a wrong sampler, by key."""
    if horizon == 2 and temperature is not None:
        return {"sampler:horizon2-as-horizon1": (temperature, 1)}
    if temperature is None or temperature == 1.0:
        return {}
    return {"sampler:temperature-ignored": (None, 1), "sampler:temperature-squared": (temperature ** 2, 1),
            "sampler:temperature-inverted": (1.0 / temperature, 1)}


def threshold_rule(loglik: list[float], got: list[bool]) -> tuple[str, tuple[float, float] | None]:
    """Which rule the labels ``got`` (True = random) follow on the log-likelihoods: "below" (random
    when below a threshold, the right direction), "above" (inverted) or "none", and the interval
    of thresholds that reproduce them (None for "none")."""
    ll = np.asarray(loglik, dtype=np.float64)
    mask = np.asarray(got, dtype=bool)
    rand, nat = ll[mask], ll[~mask]
    lo_r, hi_r = (rand.min(), rand.max()) if rand.size else (math.inf, -math.inf)
    lo_n, hi_n = (nat.min(), nat.max()) if nat.size else (math.inf, -math.inf)
    if hi_r < lo_n:
        return "below", (float(hi_r), float(lo_n))
    if lo_r > hi_n:
        return "above", (float(hi_n), float(lo_r))
    return "none", None
