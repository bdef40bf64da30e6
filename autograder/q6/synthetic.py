"""Seeded synthetic GPT-2 weights, bit-identical on every machine.

Weights come from numpy's PCG64 integer stream turned into uniforms with exact arithmetic
(no platform-dependent transcendental functions), so a seed names one model everywhere.
The embedding amplitude is set so that next-token logits have a spread of a few nats: the
top-k cut removes real mass and temperature visibly changes the law, unlike the near-uniform
logits of a default initialisation.
"""
from __future__ import annotations

import numpy as np
import torch

from autograder.q6.model import GPT2, GPT2Config


def uniform(rng: np.random.Generator, shape: tuple[int, ...], half_width: float,
            block: int = 1 << 20) -> torch.Tensor:
    """Uniform(-half_width, half_width) float32 from an exact integer-derived float64 stream,
    drawn ``block`` values at a time (the same stream: no float64 copy of a whole matrix)."""
    out = np.empty(int(np.prod(shape)), dtype=np.float32)
    for start in range(0, out.size, block):
        u = rng.random(size=min(block, out.size - start), dtype=np.float64)  # (k >> 11) * 2**-53: exact
        u *= 2.0
        u -= 1.0
        u *= half_width
        out[start : start + u.size] = u  # rounded to float32 as astype would
    return torch.from_numpy(out.reshape(shape))


def synthetic_gpt2(cfg: GPT2Config, seed: int, logit_scale: float = 2.5) -> GPT2:
    """A GPT-2 of ``cfg``'s shape whose weights depend only on ``seed``.

    ``logit_scale`` is the target standard deviation (nats) of the final logits: the tied
    embedding's uniform half-width is chosen so that a layer-normed state of width n_embd
    gives logits of that spread.
    """
    rng = np.random.Generator(np.random.PCG64(seed))
    model = GPT2.unfilled(cfg)
    width = cfg.n_embd
    sqrt3 = 3.0 ** 0.5
    wte_half = logit_scale * sqrt3 / width ** 0.5
    lin_half = sqrt3 / width ** 0.5        # keeps activations of order one through each layer
    with torch.no_grad():
        for name, p in model.transformer.named_parameters():  # fixed registration order: deterministic
            if name == "wte.weight":
                p.copy_(uniform(rng, tuple(p.shape), wte_half))
            elif name == "wpe.weight":
                p.copy_(uniform(rng, tuple(p.shape), 1.0))
            elif name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
                p.copy_(1.0 + uniform(rng, tuple(p.shape), 0.1))
            elif name.endswith(".bias"):
                p.copy_(uniform(rng, tuple(p.shape), 0.02))
            else:
                fan_in = p.shape[1]
                p.copy_(uniform(rng, tuple(p.shape), sqrt3 / fan_in ** 0.5 if fan_in != width else lin_half))
    return model.eval()
