"""The base class of the GPT-2 question's graded tests: shared models, tokenizer and inputs."""
from __future__ import annotations

import numpy as np

from autograder.q6.models import ModelCache
from autograder.q6.tokenizer import GPT2Tokenizer
from autograder.testing import GradedTestCase


class Q6TestCase(GradedTestCase):
    @property
    def models(self) -> ModelCache:
        return self.ctx.resources.setdefault("q6.models", ModelCache())

    @property
    def tokenizer(self) -> GPT2Tokenizer:
        return self.ctx.resources.setdefault("q6.tokenizer", GPT2Tokenizer())

    def random_texts(self, lengths: list[int]) -> list[np.ndarray]:
        """Token sequences of the given lengths, drawn from this test's seed."""
        rng = np.random.Generator(np.random.PCG64(self.ctx.seed(self.spec.id, "texts")))
        return [rng.integers(0, 50256, size=(1, n), dtype=np.int64) for n in lengths]

    def snippets(self, n_random: int, n_natural: int) -> tuple[list[np.ndarray], list[bool]]:
        """Encoded 100-character snippets and their labels (True = random letters)."""
        from autograder.q6.snippets import labelled_snippets

        pairs = labelled_snippets(self.ctx.seed(self.spec.id, "snippets") % 2**32, n_random, n_natural)
        texts = [self.tokenizer.encode(text).numpy() for text, _ in pairs]
        return texts, [label for _, label in pairs]
