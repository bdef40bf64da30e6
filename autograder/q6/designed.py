"""Designed grading models: known next-token laws that make every sampling mistake visible.

``ProfileLM`` is a language model in the course's calling convention whose next-token law
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

Calling convention as ``autograder.q6.model.GPT2``: ``model(input_ids, position_ids=None,
token_type_ids=None, past=None) -> (logits (B, T, 50257) float32, presents)``; ``presents`` is
``[LongTensor (B, P + T)]``, every token seen so far, reusable as ``past``.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

VOCAB = 50257                 # 29 * 1733: multipliers coprime to both give permutations
_MOD = (1 << 61) - 1          # Mersenne prime for the rolling context hash
_MUL = 1_000_003


def profile_probs(top_k: int, head: float, spread: float, beyond: float) -> np.ndarray:
    """Probabilities by rank (descending) over the whole vocabulary.

    ``head``: share of the top-k mass on rank 1; ``spread``: ratio of the k-th to the 2nd
    rank's probability; ``beyond``: total mass outside the top k.  Ranks k+1..4k decay
    geometrically from just below the k-th rank and take up to 90% of ``beyond``; all other
    tokens share the rest equally.
    """
    if not (2 <= top_k <= VOCAB // 8 and 0 < head < 1 and 0 < spread <= 1 and 0 < beyond < 1):
        raise ValueError(f"bad profile: top_k={top_k} head={head} spread={spread} beyond={beyond}")
    decay = spread ** (np.arange(top_k - 1) / max(top_k - 2, 1))
    inside = np.concatenate([[head], (1 - head) * decay / decay.sum()]) * (1 - beyond)
    shape = 0.5 ** (np.arange(3 * top_k) / top_k)
    near = min(0.9 * inside.min(), 0.9 * beyond / shape.sum()) * shape
    tail = np.full(VOCAB - 4 * top_k, (beyond - near.sum()) / (VOCAB - 4 * top_k))
    if not tail[0] < near.min() < inside.min():
        raise ValueError("profile's ranks must decrease: widen 'beyond' or raise 'spread'")
    probs = np.concatenate([inside, near, tail])
    return probs / probs.sum()


def _affine(h: int) -> tuple[int, int]:
    """A permutation i -> (a*i + b) mod V of the vocabulary, chosen by the hash h."""
    a = 1 + h % (VOCAB - 1)
    while math.gcd(a, VOCAB) != 1:
        a += 1
    return a, (h >> 17) % VOCAB


class ProfileLM(nn.Module):
    """Logits are ``design_temperature * log(probs)``: at that temperature the law is ``probs``."""

    def __init__(self, salt: int, probs: np.ndarray, design_temperature: float = 1.0,
                 out_dtype: torch.dtype = torch.float32):
        super().__init__()
        self.salt = int(salt)
        self.probs = probs
        self.design_temperature = float(design_temperature)
        self.out_dtype = out_dtype
        table = torch.from_numpy(self.design_temperature * np.log(probs)).to(out_dtype)
        # Ranks past the near-cut ones all share the tail's logit: only the head is placed per context.
        self.n_placed = int(np.count_nonzero(probs > probs[-1]))
        self.register_buffer("head", table[: self.n_placed].clone(), persistent=False)
        self.tail = float(table[-1])

    def exact_copy(self) -> "ProfileLM":
        """The same model computing its logits in float64, for the harness's laws."""
        return ProfileLM(self.salt, self.probs, self.design_temperature, torch.float64)

    def context_hashes(self, history: list[int]) -> list[int]:
        """Hash of every prefix history[:t+1]: depends on each token and its position."""
        h, out = self.salt % _MOD, []
        for tok in history:
            h = (h * _MUL + int(tok) + 1) % _MOD
            out.append(h)
        return out

    @staticmethod
    def ranks_to_tokens(h: int, n: int = VOCAB) -> torch.Tensor:
        """Token ids of ranks 0..n-1 in the context with hash h."""
        a, b = _affine(h)
        return (torch.arange(n, dtype=torch.long) * a + b) % VOCAB       # (n,)

    def in_top_k(self, tokens: list[int], start: int, top_k: int) -> np.ndarray:
        """(L,) booleans: is each token from position ``start`` on among the ``top_k`` most likely
        after the tokens before it?  Exact, from the permutation (the profile's ranks are strictly
        apart at any cut a spec allows), without building a row of logits."""
        if top_k > self.n_placed:
            raise ValueError(f"top_k={top_k} lies beyond the placed ranks ({self.n_placed})")
        hashes = self.context_hashes(tokens)
        out = np.empty(len(tokens) - start, dtype=bool)
        for i, pos in enumerate(range(start, len(tokens))):
            a, b = _affine(hashes[pos - 1])
            out[i] = (int(tokens[pos]) - b) * pow(a, -1, VOCAB) % VOCAB < top_k
        return out

    def forward(self, input_ids, position_ids=None, token_type_ids=None, past=None):
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (B, T), got shape {tuple(input_ids.shape)}")
        history = input_ids if past is None else torch.cat([past[0].to(input_ids.device), input_ids], dim=1)
        B, T = input_ids.shape
        P = history.shape[1] - T
        logits = torch.full((B, T, VOCAB), self.tail, dtype=self.out_dtype)  # (B, T, V)
        for row in range(B):
            for t, h in enumerate(self.context_hashes(history[row].tolist())[P:]):
                logits[row, t, self.ranks_to_tokens(h, self.n_placed)] = self.head
        return logits, [history]
