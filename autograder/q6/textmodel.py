"""A small deterministic language model with realistic log-likelihoods, for grading question 6e.

The course classifies 100-character snippets (random letters vs natural text) by thresholding
the log-likelihood real GPT-2 small gives them: random letters about -460..-417, natural text
-228..-72.  We cannot ship that checkpoint, so ``build_text_model`` makes a stand-in in the
course's calling convention whose numbers fall in the same places (see
``bench/textmodel_calibration.py``): any threshold a student could read off the course's plots
(about -415..-230) separates the classes, while -50, -600 or an inverted comparison do not.

The model is a Bayesian mixture of two sources, like a document that is either prose or noise:

* natural source: p(b | a) = lam(a) * bigram(b | a) + (w_bigram - lam(a)) * unigram(b)
                            + w_unigram * unigram(b) + w_rank * rank(b) + w_flat / V,
  estimated from ``data/natural_train.txt`` in GPT-2 BPE tokens.  lam(a) = w_bigram * n(a) /
  (n(a) + witten_bell * types(a)) is Witten-Bell's trust in the context's counts (0 for an
  unseen context).  rank(b) ~ (b + rank_offset) ** -rank_exponent is a Zipf prior over BPE ids:
  GPT-2 numbers its tokens in merge order, so small ids are frequent strings.  This prior is
  what lets unseen English words cost ~10 nats instead of ~15.
* noise source: with mass noise_letter_mass a token made only of ASCII letters, weighted
  52 ** -len (the law of uniformly random letters cut into tokens), else uniform over V.

The next-token law is the posterior-weighted mix of the two, the posterior being updated on every
token seen so far (token 0 included).  Natural text keeps ~all weight on the natural source;
after two or three random-letter tokens the noise source takes over, as GPT-2 itself adapts in
context.  Everything is deterministic; no randomness is drawn anywhere.

The model student code gets is ``autograder.q6.model.GPT2`` around ``NgramLaw``: the course's
module in every respect (inputs, positions, token types, its KV cache, dtypes); logits (B, T,
50257) float32 whose ``log_softmax`` is the next-token log-probabilities.  A wrong position or
a token type changes the tokens the law sees (``autograder.q6.history``).

Logits are not normalised, as GPT-2's are not: each row is the log-probabilities plus an offset
between +1 and +6 nats set by the row's position and its last token (``row_offsets``).  Softmax
and log_softmax do not see it, so every log-likelihood above is unchanged, while summing raw
logits (a forgotten log_softmax) is off by at least a nat per token.
"""
from __future__ import annotations

import math
import string
from pathlib import Path

import numpy as np
import torch

from autograder.q6.model import GPT2
from autograder.q6.tokenizer import GPT2Tokenizer
from autograder.q6.vocabulary import VOCAB_SIZE

OFFSET_LOW, OFFSET_HIGH = 1.0, 6.0   # nats added to a row's log-probabilities (see row_offsets)
_OFFSET_MODULUS = 1_000_003          # a prime: the hash of (position, token) is taken modulo it
TRAIN_PATH = Path(__file__).with_name("data") / "natural_train.txt"
_LETTERS = frozenset(string.ascii_letters)

# Calibrated with bench/textmodel_calibration.py; see the module docstring for each knob's role.
DEFAULT_KNOBS = dict(
    w_bigram=0.60,           # natural source: mass of the bigram (with its Witten-Bell backoff)
    w_unigram=0.20,          # natural source: mass of the training unigram
    w_rank=0.15,             # natural source: mass of the Zipf prior over BPE ids
    w_flat=0.05,             # natural source: uniform floor over all 50257 tokens
    witten_bell=1.0,         # > 0; larger moves a context's mass from bigram to unigram sooner
    rank_exponent=1.1,       # Zipf exponent of the rank prior
    rank_offset=50.0,        # Zipf offset: ids below ~offset get about equal prior mass
    noise_prior=0.1,         # prior probability that a text is random letters
    noise_letter_mass=0.70,  # noise source: mass on all-letter tokens (rest uniform over V)
)


class NgramLaw:
    """The two-source n-gram law; ``build_text_model`` puts it behind the course's module."""

    def __init__(self, *, base: torch.Tensor, unigram: torch.Tensor, noise: torch.Tensor,
                 context_weight: torch.Tensor, bigram_keys: torch.Tensor, bigram_probs: torch.Tensor,
                 bigram_indptr: torch.Tensor, w_bigram: float, noise_prior: float):
        self.w_bigram = float(w_bigram)
        self.noise_prior = float(noise_prior)
        self.base = base                    # (V,) f64, context-free part of natural
        self.unigram = unigram              # (V,) f64
        self.noise = noise                  # (V,) f64, noise source
        self.context_weight = context_weight  # (V,) f64, lam(a)
        self.bigram_keys = bigram_keys      # (K,) i64, a * V + b, sorted
        self.bigram_probs = bigram_probs    # (K,) f64, count(a, b) / n(a)
        self.bigram_indptr = bigram_indptr  # (V+1,) i64, CSR rows by context a
        self._dense = {torch.float64: torch.stack((base, unigram, noise))}  # (3, V) per compute dtype
        self._dense[torch.float32] = self._dense[torch.float64].float()

    def _natural_prob(self, prev: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
        """p_nat(cur | prev) elementwise, float64; prev == -1 means no context (first token)."""
        lam = torch.where(prev >= 0, self.context_weight[prev.clamp(min=0)], 0.0)
        keys = prev.clamp(min=0) * VOCAB_SIZE + cur
        idx = torch.searchsorted(self.bigram_keys, keys).clamp(max=self.bigram_keys.numel() - 1)
        bigram = torch.where(self.bigram_keys[idx] == keys, self.bigram_probs[idx], 0.0)
        return self.base[cur] + (self.w_bigram - lam) * self.unigram[cur] + lam * bigram

    def _posterior_natural(self, history: torch.Tensor) -> torch.Tensor:
        """(B, L) ids -> (B, L) f64: P(natural source | tokens 0..t) for every t."""
        prev = torch.cat((torch.full_like(history[:, :1], -1), history[:, :-1]), dim=1)  # (B, L)
        log_nat = self._natural_prob(prev, history).log().cumsum(dim=1)       # (B, L)
        log_noise = self.noise[history].log().cumsum(dim=1)                   # (B, L)
        log_odds = math.log1p(-self.noise_prior) - math.log(self.noise_prior) + log_nat - log_noise
        return torch.sigmoid(log_odds)

    def _next_token_logits(self, context: torch.Tensor, post_nat: torch.Tensor, offsets: torch.Tensor,
                           dtype: torch.dtype) -> torch.Tensor:
        """(N,) context ids, posteriors and row offsets -> (N, V) logits: log-probabilities + offset.

        Row by row on purpose: every row then goes through exactly the same kernels whatever N
        is, so a token-by-token call with ``past`` equals one full call bit for bit.  Computed in
        float32 (float64 for an exact law); other dtypes are cast from float32.
        """
        lam = self.context_weight[context]                                    # (N,) f64
        c_base, c_uni, c_noise = post_nat, post_nat * (self.w_bigram - lam), 1.0 - post_nat
        c_bigram = post_nat * lam                                             # (N,)
        work = dtype if dtype in self._dense else torch.float32
        dense = self._dense[work]                                             # (3, V)
        out = torch.empty(context.numel(), VOCAB_SIZE, dtype=work)            # (N, V)
        lows, highs = self.bigram_indptr[context].tolist(), self.bigram_indptr[context + 1].tolist()
        rows = zip(lows, highs, c_base.tolist(), c_uni.tolist(), c_noise.tolist(), offsets.tolist())
        for i, (lo, hi, c0, c1, c2, shift) in enumerate(rows):
            row = out[i]                                                      # (V,) view
            torch.mul(dense[0], c0, out=row)
            row.add_(dense[1], alpha=c1).add_(dense[2], alpha=c2)
            # successors b of context a: CSR slice lo:hi of the sorted (a, b) keys
            if hi > lo:
                cols = self.bigram_keys[lo:hi] % VOCAB_SIZE
                row.index_add_(0, cols, (c_bigram[i] * self.bigram_probs[lo:hi]).to(work))
            row.log_().add_(shift)
        return out.to(dtype)

    def logits(self, history: torch.Tensor, start: int, dtype: torch.dtype) -> torch.Tensor:
        """(B, L) tokens seen -> (B, L - start, V) logits after each of history[:, start:]."""
        B, L = history.shape
        T = L - start
        ids = history[:, start:]                                              # (B, T)
        post_nat = self._posterior_natural(history)[:, start:]                # (B, T)
        positions = torch.arange(start, L).expand(B, T)                       # (B, T)
        offsets = row_offsets(positions.reshape(-1), ids.reshape(-1))         # (B*T,)
        logits = self._next_token_logits(ids.reshape(-1), post_nat.reshape(-1), offsets, dtype)  # (B*T, V)
        return logits.view(B, T, VOCAB_SIZE)


def row_offsets(positions: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """(N,) positions in the text and (N,) last tokens -> (N,) f64 offsets in [OFFSET_LOW, OFFSET_HIGH).

    A fixed hash of the context, so a row's offset is the same in a full call and with ``past``.
    """
    mixed = (positions.long() * 2_654_435_761 + tokens.long() * 40_503 + 12_345) % _OFFSET_MODULUS
    return OFFSET_LOW + (OFFSET_HIGH - OFFSET_LOW) * mixed.double() / _OFFSET_MODULUS


def _letter_token_lengths(tokenizer: GPT2Tokenizer) -> np.ndarray:
    """(V,) int: a token's length if it is made only of ASCII letters a-z A-Z, else 0."""
    lengths = np.zeros(VOCAB_SIZE, dtype=np.int64)
    for i in range(VOCAB_SIZE):
        s = tokenizer.decode([i])
        if s and all(ch in _LETTERS for ch in s):
            lengths[i] = len(s)
    return lengths


def build_text_model(*, train_path: Path | str | None = None, tokenizer: GPT2Tokenizer | None = None,
                     **knobs: float) -> GPT2:
    """Estimate the model from ``train_path`` (default ``data/natural_train.txt``).

    ``knobs`` override ``DEFAULT_KNOBS``; w_bigram + w_unigram + w_rank + w_flat must be 1.
    """
    unknown = sorted(set(knobs) - set(DEFAULT_KNOBS))
    if unknown:
        raise ValueError(f"unknown knobs {unknown}; known: {sorted(DEFAULT_KNOBS)}")
    k = {**DEFAULT_KNOBS, **{name: float(v) for name, v in knobs.items()}}
    weights = (k["w_bigram"], k["w_unigram"], k["w_rank"], k["w_flat"])
    if min(weights) < 0 or abs(sum(weights) - 1.0) > 1e-9 or k["w_flat"] <= 0:
        raise ValueError(f"w_bigram, w_unigram, w_rank, w_flat must be >= 0 (w_flat > 0) and sum to 1, got {weights}")
    if not 0.0 < k["noise_prior"] < 1.0 or not 0.0 < k["noise_letter_mass"] < 1.0:
        raise ValueError("noise_prior and noise_letter_mass must lie strictly between 0 and 1")
    if k["witten_bell"] <= 0 or k["rank_exponent"] <= 0 or k["rank_offset"] <= 0:
        raise ValueError("witten_bell, rank_exponent and rank_offset must be positive")
    tokenizer = tokenizer or GPT2Tokenizer()
    text = Path(train_path or TRAIN_PATH).read_text(encoding="utf-8")
    ids = tokenizer.encode(text)[0].numpy().astype(np.int64)                  # (N,)
    if ids.size < 2:
        raise ValueError("the training text must hold at least two tokens")
    V = VOCAB_SIZE

    unigram = np.bincount(ids, minlength=V) / ids.size                       # (V,)
    rank = (np.arange(V) + k["rank_offset"]) ** -k["rank_exponent"]
    rank /= rank.sum()                                                        # (V,)
    base = k["w_unigram"] * unigram + k["w_rank"] * rank + k["w_flat"] / V   # (V,)

    keys, counts = np.unique(ids[:-1] * V + ids[1:], return_counts=True)      # (K,), sorted by (a, b)
    ctx = keys // V
    n_ctx = np.bincount(ctx, weights=counts, minlength=V)                     # n(a)
    types = np.bincount(ctx, minlength=V)                                     # distinct successors of a
    with np.errstate(invalid="ignore", divide="ignore"):
        lam = np.where(n_ctx > 0, k["w_bigram"] * n_ctx / (n_ctx + k["witten_bell"] * types), 0.0)
    probs = counts / n_ctx[ctx]
    indptr = np.concatenate(([0], np.cumsum(types)))                          # (V+1,)

    lengths = _letter_token_lengths(tokenizer)
    letters = np.where(lengths > 0, 52.0 ** -lengths.astype(np.float64), 0.0)
    noise = k["noise_letter_mass"] * letters / letters.sum() + (1 - k["noise_letter_mass"]) / V

    f64 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))  # noqa: E731
    i64 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))    # noqa: E731
    law = NgramLaw(
        base=f64(base), unigram=f64(unigram), noise=f64(noise), context_weight=f64(lam),
        bigram_keys=i64(keys), bigram_probs=f64(probs), bigram_indptr=i64(indptr),
        w_bigram=k["w_bigram"], noise_prior=k["noise_prior"],
    )
    return GPT2.designed(law)
