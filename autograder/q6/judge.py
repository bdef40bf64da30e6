"""Checks of the GPT-2 question: pure functions of plain data, ``check_*(name, expected, got, ...) -> Outcome``.

``name`` is the student function as shown (``"sample()"``), ``expected`` what the harness computed
from its own models, ``got`` the worker's answer, unvalidated.  Fetching answers is the test
case's (``autograder.q6.testcase``).  Every failure's headline says what the code seems to do
(a diagnosis of ``autograder.q6.diagnoses``, matched by ``autograder.q6.mistakes``) or, when no
named mistake matches, what is known; its rows say what was checked; its hint (hidden tests)
names neither an input nor an expected value.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from autograder import stats
from autograder.feedback import Outcome, Row
from autograder.q6 import mistakes
from autograder.q6.diagnoses import describe
from autograder.q6.vocabulary import VOCAB_SIZE


def _fail(headline: str, hint: str, detail: str = "", key: str | None = None, rows=()) -> Outcome:
    return Outcome(False, headline, hint, detail, key, tuple(rows))


def check_token_array(name: str, prompt: np.ndarray, got, length: int) -> Outcome:
    """A (1, T0 + length) int64 array that starts with ``prompt`` and holds valid token ids."""
    want = (1, prompt.shape[1] + length)
    if not isinstance(got, np.ndarray) or got.dtype != np.int64:
        return _fail(f"{name}: expected a LongTensor of token ids", "wrong return type", key="shape:wrong-type")
    if got.shape != want:
        key = "shape:wrong-rank" if got.ndim != 2 else "shape:wrong-length"
        return _fail(f"{name}: returned shape {got.shape}, expected {want} "
                     f"(the {prompt.shape[1]}-token prompt followed by {length} new tokens)",
                     "wrong output shape", f"shape {got.shape} != {want}", key,
                     [Row("shape", str(want), str(got.shape))])
    if not np.array_equal(got[:, : prompt.shape[1]], prompt):
        return _fail(f"{name}: the output must start with start_text unchanged", "output does not start with the prompt",
                     key="shape:prompt-changed")
    if got.min() < 0 or got.max() >= VOCAB_SIZE:
        return _fail(f"{name}: token ids must lie in [0, {VOCAB_SIZE})", "token id out of range", key="shape:token-range")
    return Outcome(True)


def check_sample_outputs(name: str, prompts: list[np.ndarray], got, length: int,
                         support: Callable[[np.ndarray], np.ndarray], top_k: int) -> Outcome:
    """Every run well formed (``check_token_array``) and every draw a top-k survivor (``support``
    gives a run's (L,) booleans)."""
    if not isinstance(got, list) or len(got) != len(prompts):
        return _fail(f"{name}: the worker's answer is malformed", "malformed answer")
    for tokens, prompt in zip(got, prompts):
        shape = check_token_array(name, prompt, tokens, length)
        if not shape.passed:
            return shape
    for tokens in got:
        inside = support(tokens)
        if not inside.all():
            step = int(np.flatnonzero(~inside)[0])
            return _fail(f"{name}: a token outside the top-{top_k} was drawn (step {step + 1}); sample only from the "
                         "filtered logits, with the KV cache, the whole prefix and the model's own positions "
                         "(no position_ids or token_type_ids)", f"a token outside the top-{top_k} was drawn",
                         f"support violation at step {step + 1}", "sampler:outside-top-k",
                         [Row("draws outside the top k", "0", f"{int((~inside).sum())} of {inside.size} in one run")])
    return Outcome(True, detail=f"{len(got)} outputs of the right shape, every draw in the top {top_k}")


@dataclass(frozen=True)
class SamplerLaw:
    """What a sampler's draws are judged against: ``rows(tokens, temperature, horizon)`` gives a
    run's (L, V) laws from its own prefix; ``temperature``/``horizon`` are the asked ones."""

    rows: Callable[[np.ndarray, float | None, int], np.ndarray]
    temperature: float | None
    horizon: int
    prompt_len: int
    alpha: float


def check_sampler_draws(name: str, expected: SamplerLaw, got: list[np.ndarray], reference: list[np.ndarray],
                        pit_seed: int, diagnose_seed: int, power_line: str = "") -> Outcome:
    """Draw-for-draw match with the reference's seeded draws, else a PIT/KS goodness-of-fit test
    at ``expected.alpha``; a failure is diagnosed by ``mistakes.fitting_laws`` (and the greedy test)."""
    if all(np.array_equal(a, b) for a, b in zip(got, reference)):
        return Outcome(True, detail=f"matched the reference draw for draw ({len(got)}x{got[0].shape[1] - expected.prompt_len} tokens)")
    rng = np.random.Generator(np.random.PCG64(pit_seed))
    drawn = [tokens[0, expected.prompt_len:] for tokens in got]
    pit, rows = [], []
    for tokens, d in zip(got, drawn):  # one run at a time: a run's laws are (length, V) float64
        r = expected.rows(tokens[0], expected.temperature, expected.horizon)
        pit.append(stats.randomized_pit(r, d, rng))
        rows.append(_RowSummary.of(r, d))
    verdict = stats.uniformity_test(np.concatenate(pit), expected.alpha)
    detail = f"KS p={verdict.pvalue:.3g} alpha={verdict.alpha:.1e} n={verdict.draws}" + (f"; {power_line}" if power_line else "")
    if verdict.passed:
        return Outcome(True, detail="differs from the reference draws but fits the law: " + detail)
    summary = _RowSummary.pool(rows)
    key = None
    if summary.is_greedy(expected.alpha):
        key = "sampler:greedy"
    else:
        settings = mistakes.sampler_candidate_settings(expected.temperature, expected.horizon)
        candidates = {k: (lambda tokens, t=t, h=h: expected.rows(tokens, t, h)) for k, (t, h) in settings.items()}
        fits = mistakes.fitting_laws(candidates, [tokens[0] for tokens in got], expected.prompt_len, diagnose_seed)
        key = fits[0].key if fits else None
        detail += "; fits " + (", ".join(f"{f.key} p={f.pvalue:.2g}" for f in fits) or "no candidate law")
    want_t = 1.0 if expected.temperature is None else expected.temperature
    table = summary.rank_rows(want_t)
    headline = (f"{name}: the drawn tokens do not follow the expected distribution. Diagnosis: {describe(key)}."
                if key else
                f"{name}: the drawn tokens do not follow the expected distribution (no common mistake matches: "
                "check that you sample with softmax over the given logits, feed the new (1, 1) token as the next "
                "input and keep the KV cache).")
    return _fail(headline, "the sampled tokens do not follow the expected law", detail, key, table)


@dataclass
class _RowSummary:
    """Per-draw facts under the expected law: the drawn token's rank, the rank buckets' expected
    mass, and the support's log-probabilities (for the temperature estimate)."""

    ranks: list[int]
    mass: np.ndarray             # (4,) summed expected mass of rank 1, 2-5, 6-k, outside
    logps: list[np.ndarray]
    index: list[int]
    log_p_argmax: float
    all_argmax: bool

    @classmethod
    def of(cls, rows: np.ndarray, drawn: np.ndarray) -> "_RowSummary":
        ranks, logps, index, mass, lp_max, argmax = [], [], [], np.zeros(4), 0.0, True
        for p, x in zip(rows, drawn):
            support = np.flatnonzero(p > 0)
            ordered = np.sort(p[support])[::-1]
            ranks.append(int(np.count_nonzero(p > p[x])) + 1 if p[x] > 0 else 0)
            mass += [ordered[:1].sum(), ordered[1:5].sum(), ordered[5:].sum(), 0.0]
            logps.append(np.log(p[support]))
            index.append(int(np.searchsorted(support, x)))
            lp_max += math.log(float(ordered[0]))
            argmax &= bool(p.argmax() == x)
        return cls(ranks, mass, logps, index, lp_max, argmax)

    @classmethod
    def pool(cls, parts: list["_RowSummary"]) -> "_RowSummary":
        return cls([r for p in parts for r in p.ranks], sum(p.mass for p in parts),
                   [lp for p in parts for lp in p.logps], [i for p in parts for i in p.index],
                   sum(p.log_p_argmax for p in parts), all(p.all_argmax for p in parts))

    def is_greedy(self, alpha: float) -> bool:
        """Every draw was its row's most likely token, which a correct sampler does with probability
        below ``alpha``: the greedy test."""
        return self.all_argmax and self.log_p_argmax < math.log(alpha)

    def rank_rows(self, want_t: float) -> list[Row]:
        n = max(len(self.ranks), 1)
        r = np.asarray(self.ranks)
        drawn = [np.sum(r == 1), np.sum((r >= 2) & (r <= 5)), np.sum(r >= 6), np.sum(r == 0)]
        labels = ["draws of the most likely token", "draws of ranks 2 to 5", "draws of rank 6 to k",
                  "draws outside the top k"]
        rows = [Row(lab, f"{m / n:.0%}", f"{d / n:.0%}") for lab, m, d in zip(labels, self.mass, drawn)]
        beta = stats.effective_inverse_temperature(self.logps, np.array(self.index))
        if math.isfinite(beta) and beta > 0:
            lo, hi = stats.inverse_temperature_interval(self.logps, beta)
            upper = "inf" if lo <= 0 else f"{want_t / lo:.2f}"
            rows.append(Row("temperature the draws look like (95% interval)", f"{want_t:g}",
                            f"{want_t / beta:.2f} ({want_t / hi:.2f} to {upper})"))
        return rows


def _entropy(p: torch.Tensor) -> float:
    q = p[p > 0]
    return float(-(q * q.log()).sum())


@dataclass(frozen=True)
class TemperatureCase:
    """One prompt's expected law: ``targets`` (each (1, V) float64; the answer may match any),
    ``masked`` (V,) booleans of the tokens top-k removed, ``candidates()`` the wrong laws by key."""

    targets: tuple[torch.Tensor, ...]
    masked: np.ndarray
    candidates: Callable[[], dict[str, torch.Tensor]]


def check_temperature_scale(name: str, expected: list[TemperatureCase], got, temperature: float,
                            tv_tol: float = 5e-3) -> Outcome:
    """temperature_scale judged on the law its output induces (row softmax), prompt by prompt."""
    if not isinstance(got, list) or len(got) != len(expected):
        return _fail(f"{name}: the worker's answer is malformed", "malformed answer")
    for out, case in zip(got, expected):
        if not isinstance(out, np.ndarray) or out.shape != (1, VOCAB_SIZE):
            shape = getattr(out, "shape", None)
            return _fail(f"{name}: returned shape {shape}, expected (1, {VOCAB_SIZE})", "wrong output shape",
                         rows=[Row("shape", f"(1, {VOCAB_SIZE})", str(shape))])
        if np.isnan(out).any() or np.isposinf(out).any():
            return _fail(f"{name}: the logits contain NaN or +inf", "NaN or +inf in the logits")
        mine = torch.softmax(torch.from_numpy(out).double(), dim=-1)
        tv = min(0.5 * float((mine - target).abs().sum()) for target in case.targets)
        if tv <= tv_tol:
            continue
        rows = [Row("entropy of softmax(logits), nats", f"{_entropy(case.targets[0]):.3f}", f"{_entropy(mine):.3f}"),
                Row("total variation from the expected law", f"at most {tv_tol:g}", f"{tv:.3f}")]
        leaked = float(mine[0, case.masked].sum())
        near = sorted((0.5 * float((mine - law).abs().sum()), k) for k, law in case.candidates().items())
        key = near[0][1] if near and near[0][0] <= tv_tol else None
        if leaked > 1e-3:
            key = key or "temperature:mask-lost"
            rows.append(Row("probability of tokens removed by top-k", "0", f"{leaked:.3g}"))
        headline = (f"{name}: the law softmax(your logits) is off by total variation {tv:.3f}. Diagnosis: "
                    f"{describe(key)}." if key else
                    f"{name}: the law softmax(your logits) is off by total variation {tv:.3f} and matches no common "
                    + ("mistake: build p(t) * p(. | t) with the second step top-k filtered, divide the log-joint by T, "
                       "then logsumexp over the second token." if case.candidates is not None and _is_h2(case)
                       else f"mistake: return the logits divided by the temperature T = {temperature:g}."))
        return _fail(headline, "the scaled logits induce the wrong distribution", f"TV={tv:.4g}", key, rows)
    return Outcome(True, detail=f"{len(expected)} prompts within TV {tv_tol}")


def _is_h2(case: TemperatureCase) -> bool:
    return len(case.targets) > 1


@dataclass(frozen=True)
class LikelihoodCase:
    """One text's expected log-likelihood: its T-1 float64 ``terms`` and ``candidates()``, the
    values of common mistakes (``mistakes.likelihood_candidates``)."""

    length: int
    terms: np.ndarray
    candidates: Callable[[], list[tuple[str, int, float]]]

    @property
    def tolerance(self) -> float:
        return 1e-3 + 1e-5 * float(np.abs(self.terms).sum())   # float32 rounding of T-1 terms, with room


def _float_list(name: str, got, n: int) -> Outcome:
    if not isinstance(got, list) or len(got) != n or not all(type(v) is float for v in got):
        return _fail(f"{name}: expected a Python float per call", "wrong return type")
    if not all(math.isfinite(v) for v in got):
        return _fail(f"{name}: returned NaN or infinity", "returned NaN or infinity")
    return Outcome(True)


def check_log_likelihood(name: str, expected: list[LikelihoodCase], got) -> Outcome:
    """Each value within float rounding of the float64 sum; the first wrong one is diagnosed."""
    shape = _float_list(name, got, len(expected))
    if not shape.passed:
        return shape
    wrong = [(case, value) for case, value in zip(expected, got) if abs(value - float(case.terms.sum())) > case.tolerance]
    if wrong:
        case, value = wrong[0]
        ref, tol = float(case.terms.sum()), case.tolerance
        detail = f"T={case.length} got={value:.6g} ref={ref:.6g} tol={tol:.2g}"
        keys = mistakes.common_hits([mistakes.likelihood_hits(v, float(c.terms.sum()), c.tolerance, c.candidates())
                                     for c, v in wrong])
        rows = [Row("tokens in the text", str(case.length), str(case.length)),
                Row("log-likelihood (nats)", f"{ref:.4f}", f"{value:.4f}")]
        if keys:
            rows.append(Row("your value matches", "the sum of log p(x_t | x_<t), t = 1..T-1",
                            " or ".join(describe(k) for k in keys)))
            headline = f"{name}: your value equals " + " (or, equally, ".join(describe(k) for k in keys[:2]) \
                + (")" if len(keys) > 1 else "") + "."
            return _fail(headline, "wrong log-likelihood", detail + "; matches " + ", ".join(keys), keys[0], rows)
        return _fail(f"{name}: wrong value for a {case.length}-token text and no common mistake matches it; it must be "
                     "the sum of log p(x_t | x_<t) for t = 1..T-1 in nats (the first token is not scored).",
                     "wrong log-likelihood", detail, None, rows)
    return Outcome(True, detail=f"{len(expected)} texts match")


def check_classification(name: str, labels: list[bool], got, loglik: Callable[[], list[float]]) -> Outcome:
    """Every label right; a failure names the threshold rule the labels follow on ``loglik()``,
    the reference log-likelihoods of the snippets."""
    if not isinstance(got, list) or len(got) != len(labels) or not all(type(v) is bool for v in got):
        return _fail(f"{name}: expected True or False per snippet", "wrong return type")
    if got == list(labels):
        return Outcome(True, detail=f"{len(labels)} snippets right")
    n_rand = sum(1 for g, w in zip(got, labels) if w and g != w)
    n_nat = sum(1 for g, w in zip(got, labels) if not w and g != w)
    ll = loglik()
    rule, interval = mistakes.threshold_rule(ll, got)
    if all(got):
        key = "classifier:all-random"
    elif not any(got):
        key = "classifier:all-natural"
    else:
        key = {"below": "classifier:threshold-off", "above": "classifier:inverted", "none": "classifier:not-a-threshold"}[rule]
    rand = [v for v, w in zip(ll, labels) if w]
    nat = [v for v, w in zip(ll, labels) if not w]
    rows = [Row("random-letter snippets called random", str(len(rand)), str(len(rand) - n_rand)),
            Row("natural snippets called natural", str(len(nat)), str(len(nat) - n_nat))]
    if rand and nat:
        rows.append(Row("log-likelihood range of the random-letter snippets", f"{min(rand):.1f} to {max(rand):.1f}", ""))
        rows.append(Row("log-likelihood range of the natural snippets", f"{min(nat):.1f} to {max(nat):.1f}", ""))
        gap = f"between {max(rand):.1f} and {min(nat):.1f}" if max(rand) < min(nat) else "none (the groups overlap)"
        implied = ("none: your labels follow no threshold" if interval is None else
                   _between(*interval) + (", inverted (random above it)" if rule == "above" else ""))
        rows.append(Row("threshold your labels imply (random below it)", gap, implied))
    return _fail(f"{name}: {n_rand} random-letter and {n_nat} natural snippets of {len(labels)} were misclassified: "
                 f"{describe(key)}.", "some snippets are misclassified",
                 f"{n_rand}+{n_nat} wrong", key, rows)



def _between(lo: float, hi: float) -> str:
    if math.isfinite(lo) and math.isfinite(hi):
        return f"between {lo:.1f} and {hi:.1f}"
    return f"above {lo:.1f}" if math.isfinite(lo) else f"below {hi:.1f}"



def check_seed_dependence(name: str, got: list[np.ndarray], length: int, law: np.ndarray | None, alpha: float,
                          greedy: Callable[[], bool] = lambda: False) -> Outcome:
    """Runs 0 and 1 (same prompt, different seeds) drew the same continuation, which a correct
    sampler does with probability (sum of p_i^2) ** length (``law``: the sorted law of every
    context, None when contexts differ); checked only where that is below 1e-6 * alpha, so it adds
    nothing visible to the test's false-failure bound.  ``greedy()`` says whether the draws pass
    the greedy test (``is_greedy``), which then names the reason."""
    if len(got) < 2 or not np.array_equal(got[0], got[1]):
        return Outcome(True)
    if law is None or stats.log_repeat_probability(law, length) >= math.log(1e-6 * alpha):
        return Outcome(True)
    if greedy():
        return _fail(f"{name}: two calls with the same prompt and different seeds drew the same {length} tokens. "
                     f"Diagnosis: {describe('sampler:greedy')}; draw the token with torch.multinomial on the softmax "
                     "instead of taking the argmax", "the draws do not depend on the random seed",
                     "identical continuations, every draw the argmax", "sampler:greedy",
                     [Row("identical continuations of one prompt under two seeds", "no", "yes"),
                      Row("draws of the most likely token", "fewer than all", "all")])
    return _fail(f"{name}: two calls with the same prompt and different seeds drew the same {length} tokens; do not "
                 "reset the random seed (e.g. torch.manual_seed) or use a fixed generator inside sample",
                 "the draws do not depend on the random seed", "identical continuations for one prompt under two seeds",
                 "sampler:reseeded", [Row("identical continuations of one prompt under two seeds", "no", "yes")])


def is_greedy(expected: SamplerLaw, got: list[np.ndarray]) -> bool:
    """The greedy test (``_RowSummary.is_greedy``) on every run's draws under the expected law."""
    parts = [_RowSummary.of(expected.rows(t[0], expected.temperature, expected.horizon), t[0, expected.prompt_len:])
             for t in got]
    return _RowSummary.pool(parts).is_greedy(expected.alpha)
