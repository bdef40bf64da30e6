"""Designed grading models: known next-token laws that make every sampling mistake visible.

``ProfileLaw`` is a next-token law (put behind the course's calling convention by
``autograder.q6.history.designed_model``) whose law
has the same sorted shape (its *profile*) in every context, while *which* token gets which
probability is a permutation drawn from a hash of the whole context.  So:

- the law depends on every token of the prefix: a sampler that mishandles the KV cache or
  the prefix samples from another context's permutation and is caught at once;
- the top-k survivors carry a profile chosen for power: at the temperature a test uses, half
  the mass is on the first token and the rest spread over the other k - 1, so a temperature
  error moves the law as much as a top-k law allows (see ``autograder/q6/power.py``);
- real mass lies beyond the top-k cut, so a sampler that skips the filter draws outside it;
- a correct sampler's probability-ordered PIT values are i.i.d. uniform, and a sampler that is
  wrong in the same way in every context gives i.i.d. PIT values too, so the power of the
  Kolmogorov-Smirnov test follows from the DKW inequality.

The model student code gets is ``autograder.q6.model.GPT2`` around this law: the course's
module in every respect (inputs, positions, token types, its KV cache, dtypes), so a wrong
position or token type shows as another context's law (``autograder.q6.history``).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from autograder.q6.vocabulary import VOCAB_SIZE  # 29 * 1733: multipliers coprime to both give permutations

_MOD = (1 << 61) - 1          # Mersenne prime for the rolling context hash
_MUL = 1_000_003


def profile_probs(top_k: int, head: float, spread: float, beyond: float) -> np.ndarray:
    """Probabilities by rank (descending) over the whole vocabulary.

    ``head``: share of the top-k mass on rank 1; ``spread``: ratio of the k-th to the 2nd
    rank's probability; ``beyond``: total mass outside the top k.  Ranks k+1..4k decay
    geometrically from just below the k-th rank and take up to 90% of ``beyond``; all other
    tokens share the rest equally.
    """
    if not (2 <= top_k <= VOCAB_SIZE // 8 and 0 < head < 1 and 0 < spread <= 1 and 0 < beyond < 1):
        raise ValueError(f"bad profile: top_k={top_k} head={head} spread={spread} beyond={beyond}")
    decay = spread ** (np.arange(top_k - 1) / max(top_k - 2, 1))
    inside = np.concatenate([[head], (1 - head) * decay / decay.sum()]) * (1 - beyond)
    shape = 0.5 ** (np.arange(3 * top_k) / top_k)
    near = min(0.9 * inside.min(), 0.9 * beyond / shape.sum()) * shape
    tail = np.full(VOCAB_SIZE - 4 * top_k, (beyond - near.sum()) / (VOCAB_SIZE - 4 * top_k))
    if not tail[0] < near.min() < inside.min():
        raise ValueError("profile's ranks must decrease: widen 'beyond' or raise 'spread'")
    probs = np.concatenate([inside, near, tail])
    return probs / probs.sum()


def _affine(h: int) -> tuple[int, int]:
    """A permutation i -> (a*i + b) mod V of the vocabulary, chosen by the hash h."""
    a = 1 + h % (VOCAB_SIZE - 1)
    while math.gcd(a, VOCAB_SIZE) != 1:
        a += 1
    return a, (h >> 17) % VOCAB_SIZE


class ProfileLaw:
    """Logits are ``design_temperature * log(probs)``: at that temperature the law is ``probs``.

    A law, not a module: ``profile_model`` puts it behind the course's calling convention.
    """

    def __init__(self, salt: int, probs: np.ndarray, design_temperature: float = 1.0):
        self.salt = int(salt)
        self.probs = probs
        self.design_temperature = float(design_temperature)
        table = self.design_temperature * np.log(probs)                 # float64, by rank
        # Ranks past the near-cut ones all share the tail's logit: only the head is placed per context.
        self.n_placed = int(np.count_nonzero(probs > probs[-1]))
        self._head = torch.from_numpy(table[: self.n_placed].copy())    # (n_placed,) float64
        self._tail = float(table[-1])

    def context_hashes(self, history: list[int]) -> list[int]:
        """Hash of every prefix history[:t+1]: depends on each token and its position."""
        h, out = self.salt % _MOD, []
        for tok in history:
            h = (h * _MUL + int(tok) + 1) % _MOD
            out.append(h)
        return out

    @staticmethod
    def ranks_to_tokens(h: int, n: int = VOCAB_SIZE) -> torch.Tensor:
        """Token ids of ranks 0..n-1 in the context with hash h."""
        a, b = _affine(h)
        return (torch.arange(n, dtype=torch.long) * a + b) % VOCAB_SIZE       # (n,)

    def _check_cut(self, top_k: int) -> None:
        if top_k > self.n_placed:
            raise ValueError(f"top_k={top_k} lies beyond the placed ranks ({self.n_placed})")

    def in_top_k(self, tokens: list[int], start: int, top_k: int) -> np.ndarray:
        """(L,) booleans: is each token from position ``start`` on among the ``top_k`` most likely
        after the tokens before it?  Exact, from the permutation (the profile's ranks are strictly
        apart at any cut a spec allows), without building a row of logits."""
        self._check_cut(top_k)
        hashes = self.context_hashes(tokens)
        out = np.empty(len(tokens) - start, dtype=bool)
        for i, pos in enumerate(range(start, len(tokens))):
            a, b = _affine(hashes[pos - 1])
            out[i] = (int(tokens[pos]) - b) * pow(a, -1, VOCAB_SIZE) % VOCAB_SIZE < top_k
        return out

    def step_laws(self, tokens: list[int], start: int, top_k: int, temperature: float | None) -> np.ndarray:
        """(L, V) float64: the top-``top_k`` law, scaled by ``temperature``, of each token from
        position ``start`` on after the tokens before it (what ``laws.step_laws`` computes from a
        row of logits).  The law by rank is the same in every context, so it is computed once, in
        a fixed order (``math.fsum``), and each row only places it by the context's permutation."""
        self._check_cut(top_k)
        by_rank = self._head[:top_k].numpy()                             # (k,) float64 logits
        if temperature is not None:
            by_rank = by_rank / temperature
        probs = np.exp(by_rank - by_rank[0])                             # rank 0 is the largest
        probs /= math.fsum(probs)
        hashes = self.context_hashes(tokens)
        out = np.zeros((len(tokens) - start, VOCAB_SIZE))                      # (L, V)
        for i, pos in enumerate(range(start, len(tokens))):
            out[i, self.ranks_to_tokens(hashes[pos - 1], top_k).numpy()] = probs
        return out

    def logits(self, history: torch.Tensor, start: int, dtype: torch.dtype) -> torch.Tensor:
        """(B, L) tokens seen -> (B, L - start, V) logits after each of history[:, start:]."""
        B, L = history.shape
        head = self._head.to(dtype)
        out = torch.full((B, L - start, VOCAB_SIZE), self._tail, dtype=dtype)   # (B, T, V)
        for row in range(B):
            for t, h in enumerate(self.context_hashes(history[row].tolist())[start:]):
                out[row, t, self.ranks_to_tokens(h, self.n_placed)] = head
        return out
