"""Exact reference quantities in float64, computed by the harness from full forward passes.

Every law is recomputed from the student's own prefix, so no assumption is made about how
the student used the KV cache.
"""
from __future__ import annotations

import numpy as np
import torch

from autograder.sandbox.heap import return_freed_memory
from autograder.q6.drivers import top_k_filter

NEG = -1e10  # the course's mask value
SCAFFOLD_EPS = 1e-10  # the horizon-2 scaffold's "+ 1e-10" inside the log


def _scaled_law(filtered: torch.Tensor, temperature: float | None) -> torch.Tensor:
    scaled = filtered if temperature is None else filtered / temperature
    return torch.softmax(scaled, dim=-1)


@torch.no_grad()
def horizon2_logits(model, past, first: torch.Tensor, top_k: int, temperature: float,
                    scaffold_eps: float = SCAFFOLD_EPS) -> torch.Tensor:
    """Horizon-2 first-token logits: log sum_x2 (p(x1) p(x2|x1) + eps)^(1/T) on the top-k survivors.

    ``first`` is one row of already filtered logits (V,); ``past`` the cache after the prefix.
    With ``scaffold_eps`` = 1e-10 this is what the course's scaffold computes; with 0 it is the
    exact marginal of the temperature-scaled joint.
    """
    survivors = torch.nonzero(first > NEG).flatten()                 # (k,)
    p1 = torch.softmax(first, dim=-1)[survivors]                     # (k,)
    k = survivors.numel()
    batch_past = [layer.expand(-1, k, -1, -1, -1) for layer in past]  # (2, k, nh, P, hs)
    logits2, _ = model(survivors.view(k, 1), past=batch_past)         # (k, 1, V)
    p2 = torch.softmax(top_k_filter(logits2[:, -1, :], top_k), dim=-1)  # (k, V)
    joint = p1.unsqueeze(1) * p2                                       # (k, V)
    marg = torch.logsumexp(torch.log(joint + scaffold_eps) / temperature, dim=-1)  # (k,)
    out = torch.full_like(first, NEG)
    out[survivors] = marg
    return out


@torch.no_grad()
def in_support(model64, tokens: np.ndarray, start: int, top_k: int, rel_tol: float = 1e-4) -> np.ndarray:
    """(L,) booleans: may a correct top-k sampler draw each token from position ``start`` on?

    The cut gets a float32-rounding margin: a token whose float64 logit is within ``rel_tol``
    of the k-th largest counts as a survivor.
    """
    law = getattr(model64, "law", None)
    if hasattr(law, "in_top_k"):                                         # a designed law knows its ranks
        return law.in_top_k([int(x) for x in tokens], start, top_k)
    ids = torch.as_tensor(tokens, dtype=torch.long).view(1, -1)
    rows = model64(ids)[0][0, start - 1 : -1].double()                # (L, V)
    kth = torch.topk(rows, top_k, dim=-1).values[:, -1]
    return (rows.gather(1, ids[0, start:].view(-1, 1))[:, 0] >= kth - rel_tol * (1.0 + kth.abs())).numpy()


@torch.no_grad()
def step_laws(model64, tokens: np.ndarray, start: int, top_k: int, temperature: float | None,
              horizon: int, scaffold_eps: float = SCAFFOLD_EPS) -> np.ndarray:
    """Law of each token from position ``start`` on, given the tokens before it: (L, V) float64."""
    law = getattr(model64, "law", None)
    if hasattr(law, "step_laws") and (horizon == 1 or temperature is None):  # a designed law knows them
        return law.step_laws([int(x) for x in tokens], start, top_k, temperature)
    ids = torch.as_tensor(tokens, dtype=torch.long).view(1, -1)
    logits, _ = model64(ids)                                           # (1, T, V)
    first = top_k_filter(logits[0, start - 1 : -1].double(), top_k)   # (L, V)
    if horizon == 1 or temperature is None:
        return _scaled_law(first, temperature).numpy()
    rows = []
    for i, pos in enumerate(range(start, ids.shape[1])):
        _, past = model64(ids[:, :pos])
        rows.append(torch.softmax(horizon2_logits(model64, past, first[i], top_k, temperature, scaffold_eps), -1))
    return torch.stack(rows).numpy()


@torch.no_grad()
def position_logprobs(model64, tokens: np.ndarray, chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """For each position t: log p_t(x_t) and log p_t(x_t+1) (the last one 0), p_t being the law
    the logits at t give.  Computed ``chunk`` positions at a time, so a 1024-token text never
    holds (T, V) float64 rows at once (64 rows of GPT-2's vocabulary: 26 MB)."""
    ids = torch.as_tensor(tokens, dtype=torch.long).view(1, -1)
    nxt = torch.cat([ids[0, 1:], ids[0, :1]])                            # (T,) next token; last wraps
    own_out, next_out = [], []
    for a, logits in model64.chunked_logits(ids, chunk):
        logp = torch.log_softmax(logits[0].double(), dim=-1)              # (c, V)
        own_out.append(logp.gather(1, ids[0, a : a + chunk].view(-1, 1))[:, 0])
        next_out.append(logp.gather(1, nxt[a : a + chunk].view(-1, 1))[:, 0])
    own, following = torch.cat(own_out).numpy(), torch.cat(next_out).numpy()
    following[-1] = 0.0
    logits = logp = None  # released before the trim
    return_freed_memory()  # the chunks' rows, which the heap would otherwise keep
    return own, following


@torch.no_grad()
def last_logits(model, tokens: np.ndarray, top_k: int):
    """The driver's input to temperature_scale, recomputed: filtered last logits and the cache."""
    logits, past = model(torch.as_tensor(tokens, dtype=torch.long).view(1, -1))
    return top_k_filter(logits[:, -1, :], top_k), past
