"""The base class of the GPT-2 question's graded tests: it fetches answers, the judge judges them.

A graded test's body names its checks (``self.check_log_likelihood()``, ``self.check_sampler_law()``
...); each check reads its inputs from the test's ``params`` in assignment.yml, the single source
of a test's inputs: ``sampler`` (calls of sample(): model, runs, prompt_len, length, temperature,
horizon), ``direct`` (calls of temperature_scale(): model, prompts, prompt_len, temperature,
horizon), ``lengths`` (log_likelihood on random token texts of those lengths) or ``snippets``
(log_likelihood or classification on labelled 100-character snippets: [number random, number
natural]), each under the named ``model``.  Here the student's answer is fetched (through
``GradedTestCase.student``) and the expected one computed; ``autograder.q6.judge`` compares them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from autograder.errors import ConfigError
from autograder.q6 import judge, laws, mistakes
from autograder.q6.grading_models import ModelCache, model_config
from autograder.q6.power import reference_law, sampler_power
from autograder.q6.tokenizer import GPT2Tokenizer
from autograder.q6.vocabulary import END_OF_TEXT_ID, VOCAB_SIZE
from autograder.testing import GradedTestCase

RUNS = ("prompts", "seeds")   # sample() requests: one run per prompt and seed, split over worker lanes


@dataclass(frozen=True)
class SamplerScenario:
    model: str                   # model name in the assignment config
    runs: int                    # calls to sample()
    prompt_len: int
    length: int                  # tokens drawn per call
    temperature: float | None = None
    horizon: int = 1


class Q6TestCase(GradedTestCase):
    @property
    def models(self) -> ModelCache:
        if "q6.models" not in self.ctx.resources:
            models = ModelCache(self.ctx.isolation.store, writer=True)
            models.share(self.ctx.assignment.models.values())  # before any worker builds its own
            self.ctx.resources["q6.models"] = models
        return self.ctx.resources["q6.models"]

    @property
    def tokenizer(self) -> GPT2Tokenizer:
        return self.ctx.resources.setdefault("q6.tokenizer", GPT2Tokenizer())

    def params(self, key: str):
        """The test's ``params[key]`` in the assignment config; a ConfigError names what is missing."""
        if key not in (self.spec.params or {}):
            raise ConfigError(f"test {self.spec.id} checks {key!r} but its params in the assignment config have "
                              f"{sorted(self.spec.params or {})}; add params.{key}")
        return self.spec.params[key]

    # --- inputs -----------------------------------------------------------------------------

    def random_texts(self, lengths: list[int]) -> list[np.ndarray]:
        """Token sequences of the given lengths, drawn from this test's seed."""
        rng = np.random.Generator(np.random.PCG64(self.ctx.seed(self.spec.id, "texts")))
        return [rng.integers(0, END_OF_TEXT_ID, size=(1, n), dtype=np.int64) for n in lengths]

    def snippets(self, n_random: int, n_natural: int) -> tuple[list[np.ndarray], list[bool]]:
        """Encoded 100-character snippets and their labels (True = random letters)."""
        from autograder.q6.snippets import labelled_snippets

        pairs = labelled_snippets(self.ctx.seed(self.spec.id, "snippets") % 2**32, n_random, n_natural)
        texts = [self.tokenizer.encode(text).numpy() for text, _ in pairs]
        return texts, [label for _, label in pairs]

    def prompts(self, n: int, length: int) -> list[np.ndarray]:
        rng = np.random.Generator(np.random.PCG64(self.ctx.seed(self.spec.id, "prompts")))
        return [rng.integers(0, VOCAB_SIZE - 1, size=(1, length), dtype=np.int64) for _ in range(n)]

    def _texts(self) -> tuple[list[np.ndarray], list[bool] | None]:
        p = self.spec.params or {}
        if "lengths" in p:
            return self.random_texts(list(p["lengths"])), None
        if "snippets" in p:
            return self.snippets(*p["snippets"])
        raise ConfigError(f"test {self.spec.id} needs params.lengths or params.snippets in the assignment config")

    def _model_args(self, model_name: str) -> tuple[dict, dict]:
        spec = self.ctx.assignment.model(model_name)
        return spec, {"model": spec, "config": model_config(spec).namespace().__dict__}

    # --- sample() ---------------------------------------------------------------------------

    def _draws(self, sc: SamplerScenario):
        """Run the scenario's sample() calls: (model spec, request, prompts, answer, outcome of the
        shape and top-k support checks)."""
        spec, args = self._model_args(sc.model)
        prompts = self.prompts(sc.runs, sc.prompt_len)
        if sc.runs >= 2:
            prompts[1] = prompts[0].copy()   # the first two runs share a prompt: draws that ignore the seed show
        args.update(prompts=prompts, seeds=[self.ctx.seed(self.spec.id, "run", i) for i in range(sc.runs)],
                    length=sc.length, temperature=sc.temperature, horizon=sc.horizon)
        got = self.student("sample", args, spread=RUNS)["tokens"]
        top_k = model_config(spec).top_k
        model64 = self.models.get(spec, torch.float64)
        support = lambda tokens: laws.in_support(model64, tokens[0], sc.prompt_len, top_k)  # noqa: E731
        return spec, args, got, judge.check_sample_outputs("sample()", prompts, got, sc.length, support, top_k)

    def check_sample_shape(self) -> None:
        """sample()'s outputs: shape, prefix, token range and the top-k support of every draw."""
        *_, outcome = self._draws(SamplerScenario(**self.params("sampler")))
        self.report(outcome)

    def check_sampler_law(self) -> None:
        """sample()'s draws: well formed, then seed dependence, then the reference's seeded draws
        or a goodness-of-fit test of the law they follow."""
        sc = SamplerScenario(**self.params("sampler"))
        spec, args, got, outcome = self._draws(sc)
        self.report(outcome)
        alpha = self.ctx.assignment.alpha_per_test
        top_k, model64 = model_config(spec).top_k, self.models.get(spec, torch.float64)
        expected = judge.SamplerLaw(
            rows=lambda tokens, t, h: laws.step_laws(model64, tokens, sc.prompt_len, top_k, t, h),
            temperature=sc.temperature, horizon=sc.horizon, prompt_len=sc.prompt_len, alpha=alpha)
        law = reference_law(spec, sc.temperature) if spec.get("kind") == "profile" else None
        self.report(judge.check_seed_dependence("sample()", got, sc.length, law, alpha,
                                                greedy=lambda: judge.is_greedy(expected, got)))
        ref = self.reference("sample", args, spread=RUNS)["tokens"]
        power = sampler_power(spec, sc.temperature, sc.runs * sc.length, alpha)
        self.report(judge.check_sampler_draws("sample()", expected, got, ref, self.ctx.seed(self.spec.id, "pit"),
                                              self.ctx.seed(self.spec.id, "diagnose"), power.line() if power else ""))

    # --- temperature_scale() ----------------------------------------------------------------

    def check_temperature_scale(self) -> None:
        """temperature_scale() judged on the law its logits induce, against the tempered (horizon 1)
        or two-step marginal (horizon 2) law of each prompt."""
        d = self.params("direct")
        spec, args = self._model_args(d["model"])
        prompts = self.prompts(d["prompts"], d["prompt_len"])
        temperature, horizon = d["temperature"], d["horizon"]
        args.update(prompts=prompts, temperature=temperature, horizon=horizon, seed=self.ctx.seed(self.spec.id, "call"))
        got = self.student("temperature_scale", args)["logits"]
        model, top_k = self.models.get(spec), model_config(spec).top_k
        cases = []
        for prompt in prompts[: len(got) if isinstance(got, list) else 0]:
            filtered, past = laws.last_logits(model, prompt, top_k)
            if horizon == 1:
                targets = (torch.softmax(filtered.double() / temperature, dim=-1),)
            else:
                targets = tuple(torch.softmax(laws.horizon2_logits(model, past, filtered[0], top_k, temperature, eps)
                                              .double(), -1)[None] for eps in (laws.SCAFFOLD_EPS, 0.0))
            cases.append(judge.TemperatureCase(
                targets, (filtered[0] <= laws.NEG).numpy(),
                lambda f=filtered, pa=past: mistakes.temperature_candidates(model, pa, f, top_k, temperature, horizon)))
        if isinstance(got, list) and len(got) != len(prompts):
            cases = [None] * len(prompts)
        self.report(judge.check_temperature_scale("temperature_scale()", cases, got, temperature))

    # --- log_likelihood() and classification() --------------------------------------------

    def check_log_likelihood(self) -> None:
        """log_likelihood() of each text within float rounding of the float64 sum."""
        model_name = self.params("model")
        texts, _ = self._texts()
        spec = self.ctx.assignment.model(model_name)
        got = self.student("log_likelihood", {"model": spec, "texts": texts, "seed": self.ctx.seed(self.spec.id, "call")})["values"]
        cases = []
        if isinstance(got, list) and len(got) == len(texts):
            model64 = self.models.get(spec, torch.float64)
            for text in texts:
                own, nxt = laws.position_logprobs(model64, text[0])
                terms = nxt[:-1]
                case = judge.LikelihoodCase(text.shape[1], terms, lambda t=text[0], tr=terms, o=own:
                                            mistakes.likelihood_candidates(model64, t, tr, o))
                if terms.size and np.abs(terms).min() <= 2 * case.tolerance:
                    self.ctx.log(f"[{self.spec.id}] warning: a term of {np.abs(terms).min():.2g} nats is within 2x "
                                 f"the tolerance {case.tolerance:.2g}")
                cases.append(case)
        else:
            cases = [None] * len(texts)
        self.report(judge.check_log_likelihood("log_likelihood()", cases, got))

    def check_classification(self) -> None:
        """classification() right on every snippet, under the test's model and, when the assignment
        has one, the course's checkpoint."""
        texts, labels = self._texts()
        names = [self.params("model")] + (["course"] if "course" in self.ctx.assignment.models else [])
        for model_name in names:
            spec = self.ctx.assignment.model(model_name)
            got = self.student("classification", {"model": spec, "texts": texts,
                                                  "seed": self.ctx.seed(self.spec.id, "call")})["labels"]
            loglik = lambda s=spec: [float(laws.position_logprobs(self.models.get(s, torch.float64), t[0])[1][:-1].sum())
                                     for t in texts]  # noqa: E731
            self.report(judge.check_classification("classification()", labels, got, loglik))
