"""Checks of the GPT-2 question, run by the harness on plain data returned by the worker.

Every check returns an ``Outcome``: a message for public tests that says what the code seems
to do, a one-line hint for hidden tests (never their inputs or expected values), and a
detail line for the staff log.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from autograder import stats
from autograder.q6 import laws
from autograder.q6.grading_models import ModelCache, model_config
from autograder.q6.power import reference_law, sampler_power
from autograder.q6.vocabulary import VOCAB_SIZE
from autograder.testing import GradedTestCase, Outcome

RUNS = ("prompts", "seeds")   # sample() requests: one run per prompt and seed, split over worker lanes


@dataclass(frozen=True)
class SamplerScenario:
    model: str                   # model name in the assignment config
    runs: int                    # calls to sample()
    prompt_len: int
    length: int                  # tokens drawn per call
    temperature: float | None = None
    horizon: int = 1


def _args(t: GradedTestCase, model_name: str) -> tuple[dict, dict]:
    spec = t.ctx.assignment.model(model_name)
    cfg = model_config(spec)
    return spec, {"model": spec, "config": cfg.namespace().__dict__}


def _prompts(t: GradedTestCase, n: int, length: int) -> list[np.ndarray]:
    rng = np.random.Generator(np.random.PCG64(t.ctx.seed(t.spec.id, "prompts")))
    return [rng.integers(0, VOCAB_SIZE - 1, size=(1, length), dtype=np.int64) for _ in range(n)]


def _run_prompts(t: GradedTestCase, sc: SamplerScenario) -> list[np.ndarray]:
    """One prompt per run; the first two runs share theirs, so draws that ignore the seed show."""
    prompts = _prompts(t, sc.runs, sc.prompt_len)
    if sc.runs >= 2:
        prompts[1] = prompts[0].copy()
    return prompts


def _reseeds_itself(spec: dict, sc: SamplerScenario, got: list[np.ndarray], alpha: float) -> Outcome | None:
    """Runs 0 and 1 (same prompt, different seeds) drew the same continuation, which a correct
    sampler does with probability (sum of p_i^2) ** length; checked only where that is below
    1e-6 * alpha, so it adds nothing visible to the test's false-failure bound."""
    if sc.runs < 2 or not np.array_equal(got[0], got[1]):
        return None
    law = reference_law(spec, sc.temperature) if spec.get("kind") == "profile" else None
    if law is None or stats.log_repeat_probability(law, sc.length) >= math.log(1e-6 * alpha):
        return None
    return Outcome(False, "sample(): two calls with the same prompt and different seeds drew the same "
                   f"{sc.length} tokens; do not reset the random seed (e.g. torch.manual_seed) or use a fixed "
                   "generator inside sample", "the draws do not depend on the random seed",
                   "identical continuations for one prompt under two seeds")


def check_token_array(name: str, got, prompt: np.ndarray, length: int) -> Outcome:
    """A (1, T0 + length) integer array that starts with the prompt and holds valid token ids."""
    want = (1, prompt.shape[1] + length)
    if not isinstance(got, np.ndarray) or got.dtype != np.int64:
        return Outcome(False, f"{name}: expected a LongTensor of token ids", "wrong return type")
    if got.shape != want:
        return Outcome(False, f"{name}: returned shape {got.shape}, expected {want} "
                       f"(the {prompt.shape[1]}-token prompt followed by {length} new tokens)",
                       "wrong output shape", f"shape {got.shape} != {want}")
    if not np.array_equal(got[:, : prompt.shape[1]], prompt):
        return Outcome(False, f"{name}: the output must start with start_text unchanged", "output does not start with the prompt")
    if got.min() < 0 or got.max() >= VOCAB_SIZE:
        return Outcome(False, f"{name}: token ids must lie in [0, {VOCAB_SIZE})", "token id out of range")
    return Outcome(True)


def _draws(t: GradedTestCase, sc: SamplerScenario, models: ModelCache):
    """Run the scenario's sample() calls; return (spec, args, draws) and the first shape or
    top-k support failure (None when every output is well formed and every draw a survivor)."""
    spec, args = _args(t, sc.model)
    prompts = _run_prompts(t, sc)
    args.update(prompts=prompts, seeds=[t.ctx.seed(t.spec.id, "run", i) for i in range(sc.runs)],
                length=sc.length, temperature=sc.temperature, horizon=sc.horizon)
    got = t.student("sample", args, spread=RUNS)["tokens"]
    if not isinstance(got, list) or len(got) != sc.runs:
        return (spec, args, got), Outcome(False, "sample(): the worker's answer is malformed", "malformed answer")
    for tokens, prompt in zip(got, prompts):
        shape = check_token_array("sample()", tokens, prompt, sc.length)
        if not shape.passed:
            return (spec, args, got), shape
    top_k = model_config(spec).top_k
    model64 = models.get(spec, torch.float64)
    for tokens in got:
        support = laws.in_support(model64, tokens[0], sc.prompt_len, top_k)
        if not support.all():
            return (spec, args, got), _outside_top_k(top_k, int(np.flatnonzero(~support)[0]))
    return (spec, args, got), None


def sample_shape(t: GradedTestCase, sc: SamplerScenario, models: ModelCache) -> Outcome:
    """The output's shape, prefix and token range, and the top-k support of every draw."""
    (spec, _, _), failure = _draws(t, sc, models)
    return failure or Outcome(True, detail=f"{sc.runs} outputs of the right shape, every draw in the "
                                           f"top {model_config(spec).top_k}")


def _outside_top_k(top_k: int, step: int) -> Outcome:
    return Outcome(False, f"sample(): a token outside the top-{top_k} was drawn (step {step + 1}); "
                   "sample only from the filtered logits, with the KV cache, the whole prefix and the model's own "
                   "positions (no position_ids or token_type_ids)",
                   f"a token outside the top-{top_k} was drawn", f"support violation at step {step + 1}")


def sampler_law(t: GradedTestCase, sc: SamplerScenario, models: ModelCache) -> Outcome:
    """Support check, then seeded draw-for-draw match, then a PIT/KS goodness-of-fit test."""
    (spec, args, got), failure = _draws(t, sc, models)
    if failure is not None:
        return failure
    top_k = model_config(spec).top_k
    model64 = models.get(spec, torch.float64)
    alpha = t.ctx.assignment.alpha_per_test
    reseeded = _reseeds_itself(spec, sc, got, alpha)
    if reseeded is not None:
        return reseeded
    ref = t.reference("sample", args, spread=RUNS)["tokens"]
    if all(np.array_equal(a, b) for a, b in zip(got, ref)):
        return Outcome(True, detail=f"matched the reference draw for draw ({sc.runs}x{sc.length} tokens)")
    rng = np.random.Generator(np.random.PCG64(t.ctx.seed(t.spec.id, "pit")))
    pit, evidence = [], _Evidence()
    for tokens in got:  # one run at a time: a run's laws are (length, V) float64
        rows = laws.step_laws(model64, tokens[0], sc.prompt_len, top_k, sc.temperature, sc.horizon)
        drawn = tokens[0, sc.prompt_len:]
        pit.append(stats.randomized_pit(rows, drawn, rng))
        evidence.add(rows, drawn)
    verdict = stats.uniformity_test(np.concatenate(pit), alpha)
    report = sampler_power(spec, sc.temperature, verdict.draws, alpha)
    detail = f"KS p={verdict.pvalue:.3g} alpha={verdict.alpha:.1e} n={verdict.draws}" + (f"; {report.line()}" if report else "")
    if verdict.passed:
        return Outcome(True, detail="differs from the reference draws but fits the law: " + detail)
    return Outcome(False, "sample(): the drawn tokens do not follow the expected distribution. "
                   + evidence.diagnose(sc.temperature), "the sampled tokens do not follow the expected law", detail)


class _Evidence:
    """What the draws say about the mistake: how often they were the argmax, and their temperature."""

    def __init__(self) -> None:
        self.greedy: list[bool] = []
        self.logps: list[np.ndarray] = []
        self.index: list[int] = []

    def add(self, rows: np.ndarray, drawn: np.ndarray) -> None:
        for p, x in zip(rows, drawn):
            support = np.flatnonzero(p > 0)
            self.greedy.append(bool(p.argmax() == x))
            self.logps.append(np.log(p[support]))
            self.index.append(int(np.searchsorted(support, x)))

    def diagnose(self, temperature: float | None) -> str:
        if np.mean(self.greedy) > 0.99:
            return "Every draw was the most likely token: it looks like greedy decoding (argmax) instead of sampling."
        beta = stats.effective_inverse_temperature(self.logps, np.array(self.index))
        expected = 1.0 if temperature is None else temperature
        if math.isfinite(beta) and beta > 0 and abs(math.log(beta)) > 0.05:
            return f"Your draws look like temperature ~ {expected / beta:.2f} (expected {expected:g})."
        return ("Check that you sample with softmax over the given logits, feed the new (1, 1) token as the "
                "next input and keep the KV cache.")


def temperature_law(t: GradedTestCase, model: str, prompts: int, prompt_len: int,
                    temperature: float, horizon: int, models: ModelCache, tv_tol: float = 5e-3) -> Outcome:
    """temperature_scale judged on the law its output induces (row softmax)."""
    model_name, n_prompts = model, prompts
    spec, args = _args(t, model_name)
    prompts = _prompts(t, n_prompts, prompt_len)
    args.update(prompts=prompts, temperature=temperature, horizon=horizon, seed=t.ctx.seed(t.spec.id, "call"))
    got = t.student("temperature_scale", args)["logits"]
    if not isinstance(got, list) or len(got) != n_prompts:
        return Outcome(False, "temperature_scale(): the worker's answer is malformed", "malformed answer")
    model = models.get(spec)
    top_k = model_config(spec).top_k
    for out, prompt in zip(got, prompts):
        if not isinstance(out, np.ndarray) or out.shape != (1, VOCAB_SIZE):
            shape = getattr(out, "shape", None)
            return Outcome(False, f"temperature_scale(): returned shape {shape}, expected (1, {VOCAB_SIZE})", "wrong output shape")
        if np.isnan(out).any() or np.isposinf(out).any():
            return Outcome(False, "temperature_scale(): the logits contain NaN or +inf", "NaN or +inf in the logits")
        filtered, past = laws.last_logits(model, prompt, top_k)
        mine = torch.softmax(torch.from_numpy(out).double(), dim=-1)
        if horizon == 1:
            targets = [torch.softmax(filtered.double() / temperature, dim=-1)]
        else:
            targets = [torch.softmax(laws.horizon2_logits(model, past, filtered[0], top_k, temperature, eps).double(), -1)
                       for eps in (laws.SCAFFOLD_EPS, 0.0)]
        tv = min(0.5 * float((mine - target).abs().sum()) for target in targets)
        if tv > tv_tol:
            return Outcome(False, f"temperature_scale(): the law softmax(your logits) is off by total variation {tv:.3f}. "
                           + _temperature_hint(mine, targets[0], filtered, temperature, horizon),
                           "the scaled logits induce the wrong distribution", f"TV={tv:.4g}")
    return Outcome(True, detail=f"{n_prompts} prompts within TV {tv_tol}")


def _temperature_hint(mine, target, filtered, temperature, horizon) -> str:
    masked = (filtered[0] <= laws.NEG).numpy()
    if float(mine[0, masked].sum()) > 1e-3:
        return "Tokens removed by top-k must keep (numerically) zero probability."
    if horizon == 2:
        return "Build p(t) * p(. | t) with the second step top-k filtered, divide the log-joint by T, then logsumexp over the second token."
    ratio = float((mine[0, ~masked].log().std() / target[0, ~masked].log().std()))
    if ratio > 0:
        return f"Your logits look like temperature ~ {temperature / ratio:.2f} (expected {temperature:g}): divide the logits by T."
    return "Return the logits divided by the temperature."


def _float_list(name: str, got, n: int) -> Outcome:
    if not isinstance(got, list) or len(got) != n or not all(type(v) is float for v in got):
        return Outcome(False, f"{name}: expected a Python float per call", "wrong return type")
    if not all(math.isfinite(v) for v in got):
        return Outcome(False, f"{name}: returned NaN or infinity", "returned NaN or infinity")
    return Outcome(True)


def _likelihood_terms(model64, tokens: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    """The T-1 reference terms log p(x_t | x_<t), and what common wrong implementations return."""
    own, nxt = laws.position_logprobs(model64, tokens)    # (T,) log p_t(x_t), (T,) log p_t(x_t+1)
    terms = nxt[:-1]                                       # (T-1,)
    total, n = float(terms.sum()), max(terms.size, 1)
    return terms, {
        "the mean log-probability per token, not the sum": total / n,
        "the sign is flipped (a negative log-likelihood)": -total,
        "each token scored against its own position's logits (no shift)": float(own.sum()),
        "the mean negative log-likelihood per token": -total / n,
        "counts the first token (scored by the logits at position 0)": total + float(own[0]),
        "counts the first token (with a uniform prior over the vocabulary)": total - math.log(VOCAB_SIZE),
        "leaves out the last token's term": total - float(terms[-1]) if terms.size else total,
    }


def log_likelihood_values(t: GradedTestCase, model_name: str, texts: list[np.ndarray], models: ModelCache) -> Outcome:
    """Each value within float rounding of the float64 sum; the tolerance stays below any one term."""
    spec = t.ctx.assignment.model(model_name)
    got = t.student("log_likelihood", {"model": spec, "texts": texts, "seed": t.ctx.seed(t.spec.id, "call")})["values"]
    shape = _float_list("log_likelihood()", got, len(texts))
    if not shape.passed:
        return shape
    model64 = models.get(spec, torch.float64)
    for text, value in zip(texts, got):
        terms, mistakes = _likelihood_terms(model64, text[0])
        ref = float(terms.sum())
        tol = 1e-3 + 1e-5 * float(np.abs(terms).sum())   # float32 rounding of T-1 terms, with room
        if terms.size and np.abs(terms).min() <= 2 * tol:
            t.ctx.log(f"[{t.spec.id}] warning: a term of {np.abs(terms).min():.2g} nats is within 2x the tolerance {tol:.2g}")
        if abs(value - ref) <= tol:
            continue
        detail = f"T={text.shape[1]} got={value:.6g} ref={ref:.6g} tol={tol:.2g}"
        for what, wrong in mistakes.items():
            if abs(value - wrong) <= tol:
                return Outcome(False, f"log_likelihood(): your value equals {what}.", "wrong log-likelihood", detail)
        return Outcome(False, f"log_likelihood(): wrong value for a {text.shape[1]}-token text; it must be the sum of "
                       "log p(x_t | x_<t) for t = 1..T-1 in nats (the first token is not scored).",
                       "wrong log-likelihood", detail)
    return Outcome(True, detail=f"{len(texts)} texts match")


def classification_labels(t: GradedTestCase, model_name: str, texts: list[np.ndarray], labels: list[bool]) -> Outcome:
    spec = t.ctx.assignment.model(model_name)
    got = t.student("classification", {"model": spec, "texts": texts, "seed": t.ctx.seed(t.spec.id, "call")})["labels"]
    if not isinstance(got, list) or len(got) != len(texts) or not all(type(v) is bool for v in got):
        return Outcome(False, "classification(): expected True or False per snippet", "wrong return type")
    wrong = [g != want for g, want in zip(got, labels)]
    if not any(wrong):
        return Outcome(True, detail=f"{len(texts)} snippets right")
    n_rand = sum(1 for g, w in zip(got, labels) if w and g != w)
    n_nat = sum(1 for g, w in zip(got, labels) if not w and g != w)
    if all(wrong):
        why = "Every label is inverted: random text has the LOWER log-likelihood, so it is random when below the threshold."
    elif all(got):
        why = "Every snippet was called random: your threshold is above every natural snippet's log-likelihood (too high)."
    elif not any(got):
        why = "Every snippet was called natural: your threshold is below every random snippet's log-likelihood (too low)."
    else:
        why = "Pick a threshold in the gap between the two histograms of question 6d."
    return Outcome(False, f"classification(): {n_rand} random-letter and {n_nat} natural snippets of {len(texts)} "
                   f"were misclassified. {why}", "some snippets are misclassified", f"{n_rand}+{n_nat} wrong")
