"""The base class of the GPT-2 question's graded tests: shared models, tokenizer and inputs.

A test's ``params`` in assignment.yml say what to run: ``direct`` (temperature_scale judged on
its law), ``sampler`` (sample() judged on its draws), ``lengths`` (log_likelihood on random
token texts) or ``snippets`` (log_likelihood or classification on labelled 100-character
snippets: [number random, number natural]), each under the named ``model``.
"""
from __future__ import annotations

import numpy as np

from autograder.errors import ConfigError
from autograder.q6 import judge
from autograder.q6.grading_models import ModelCache
from autograder.q6.tokenizer import GPT2Tokenizer
from autograder.q6.vocabulary import END_OF_TEXT_ID
from autograder.testing import GradedTestCase


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

    def check_sample_shape(self) -> None:
        sc = judge.SamplerScenario(**self.spec.params["sampler"])
        self.report(judge.sample_shape(self, sc, self.models))

    def check_params(self) -> None:
        """Run every check this test's params ask for; the first failure fails the test."""
        p = self.spec.params
        if not p:
            raise ConfigError(f"test {self.spec.id} has no params in the assignment config")
        if "direct" in p:
            self.report(judge.temperature_law(self, models=self.models, **p["direct"]))
        if "sampler" in p:
            self.report(judge.sampler_law(self, judge.SamplerScenario(**p["sampler"]), self.models))
        texts = labels = None
        if "lengths" in p:
            texts = self.random_texts(list(p["lengths"]))
        if "snippets" in p:
            texts, labels = self.snippets(*p["snippets"])
        if texts is not None and self.spec.module == "likelihood":
            self.report(judge.log_likelihood_values(self, p["model"], texts, self.models))
        if texts is not None and self.spec.module == "classifier":
            self.report(judge.classification_labels(self, p["model"], texts, labels))
            if "course" in self.ctx.assignment.models:
                self.report(judge.classification_labels(self, "course", texts, labels))
