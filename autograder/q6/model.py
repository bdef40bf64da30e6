"""GPT-2 in the course's calling convention.

``model(input_ids, position_ids=None, token_type_ids=None, past=None) -> (logits, presents)``
with logits (B, T, vocab) float32 and ``presents`` a list holding one stacked key/value
tensor (2, B, nh, T, hs) per layer, reusable as ``past``.  Module names follow Hugging Face's
GPT-2 so a checkpoint loads with a plain loop (see ``load_state_dict_hf``).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from types import SimpleNamespace

import torch
import torch.nn as nn
from torch.nn import functional as F


@dataclass(frozen=True)
class GPT2Config:
    """Field names are the course's ``config.yml`` keys, so student code reads them unchanged."""

    seed: int = 20190929            # the course's seed; synthetic models derive weights from it
    vocab_size: int = 50257         # GPT-2 BPE vocabulary, kept in every grading model
    n_positions: int = 1024         # rows of the position table
    n_ctx: int = 1024               # context limit students may assume
    n_embd: int = 768               # residual width
    n_layer: int = 12               # transformer blocks
    n_head: int = 12                # attention heads; n_embd must divide evenly
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02  # std of Hugging Face's init; kept for the course's config
    top_k: int = 40                 # the sampler's top-k cut, read by student code as config.top_k

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} is not a multiple of n_head={self.n_head}")

    def namespace(self) -> SimpleNamespace:
        """The attribute namespace the course's code receives as ``config``."""
        return SimpleNamespace(**asdict(self))

    @classmethod
    def from_mapping(cls, data: dict) -> "GPT2Config":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown GPT-2 config keys {unknown}; known keys: {sorted(known)}")
        return cls(**data)


class Attention(nn.Module):
    def __init__(self, cfg: GPT2Config):
        super().__init__()
        self.n_head = cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)

    def forward(self, x: torch.Tensor, layer_past: torch.Tensor | None):
        B, T, C = x.shape
        q, k, v = _linear(self.c_attn, x).split(C, dim=2)
        hs = C // self.n_head
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        present = torch.stack((k, v))                      # (2, B, nh, T, hs)
        if layer_past is not None:  # one new cache, whose halves serve as k and v: no extra copies
            present = torch.cat((layer_past, present), dim=3)  # (2, B, nh, P+T, hs)
        k, v = present[0], present[1]                      # (B, nh, P+T, hs)
        P = k.size(2) - T
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)    # (B, nh, T, P+T)
        causal = torch.ones(T, P + T, dtype=torch.bool, device=x.device).tril(diagonal=P)
        att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return _linear(self.c_proj, y), present


class MLP(nn.Module):
    def __init__(self, cfg: GPT2Config):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _linear(self.c_proj, F.gelu(_linear(self.c_fc, x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, cfg: GPT2Config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.attn = Attention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.mlp = MLP(cfg)

    def forward(self, x, layer_past):
        a, present = self.attn(_norm(self.ln_1, x), layer_past)
        x = x + a
        return x + self.mlp(_norm(self.ln_2, x)), present


class GPT2(nn.Module):
    """GPT-2 with a tied readout; parameters named as Hugging Face's ``GPT2Model``."""

    def __init__(self, cfg: GPT2Config):
        super().__init__()
        self.config = cfg
        # Embeddings start uninitialised: every way a model is made overwrites all its weights.
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd, _weight=torch.empty(cfg.vocab_size, cfg.n_embd))
        self.wpe = nn.Embedding(cfg.n_positions, cfg.n_embd, _weight=torch.empty(cfg.n_positions, cfg.n_embd))
        self.h = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)

    def forward(self, input_ids, position_ids=None, token_type_ids=None, past=None, dtype=None):
        """``dtype`` (harness only): compute in that precision from these weights, e.g. float64
        from float32 weights without a float64 copy of the model."""
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (B, T), got shape {tuple(input_ids.shape)}")
        past_len = 0 if past is None else past[0].size(-2)
        x = self._embed(input_ids, position_ids, token_type_ids, past_len, dtype)  # (B, T, C)
        presents = []
        for i, block in enumerate(self.h):
            x, present = block(x, None if past is None else past[i])
            presents.append(present)
        return self._readout(x), presents  # float32 for a float32 model, as the course expects

    @torch.no_grad()
    def chunked_logits(self, input_ids, chunk: int, dtype=None):
        """Yield (start, logits (B, c, V)) of ``chunk`` positions at a time (harness only).

        The same operations on the same shapes as feeding the chunks through ``forward`` with
        ``past``, so the same values, but computed a layer at a time: one layer's KV cache is
        held, never the whole model's (GPT-2 small in float64: 13 MB instead of 150 MB, twice
        over while the caches grow)."""
        starts = range(0, input_ids.size(1), chunk)
        if not starts:
            return
        xs = [self._embed(input_ids[:, a : a + chunk], None, None, a, dtype) for a in starts]  # (B, c, C) each
        dt = xs[0].dtype
        for block in self.h:
            weights = {name: p.to(dt) for name, p in block.named_parameters()}  # cast once, not per chunk
            past = None
            for i, x in enumerate(xs):
                xs[i], past = torch.func.functional_call(block, weights, (x, past))
            weights = past = None
        # one buffer for the readout's casts of the vocabulary, when the precisions differ
        rows = None if dt == self.wte.weight.dtype else torch.empty(_READOUT_ROWS, self.config.n_embd, dtype=dt)
        for a, x in zip(starts, xs):
            yield a, self._readout(x, rows)

    def _embed(self, input_ids, position_ids, token_type_ids, past_len: int, dtype) -> torch.Tensor:
        B, T = input_ids.shape
        if past_len + T > self.config.n_positions:
            raise ValueError(f"{past_len + T} positions exceed n_positions={self.config.n_positions}")
        if position_ids is None:
            position_ids = torch.arange(past_len, past_len + T, device=input_ids.device)
            position_ids = position_ids.unsqueeze(0).expand(B, T)
        dt = dtype or self.wte.weight.dtype
        x = self.wte(input_ids).to(dt) + self.wpe(position_ids).to(dt)  # (B, T, C)
        if token_type_ids is not None:
            x = x + self.wte(token_type_ids).to(dt)
        return x

    def _readout(self, x: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        x = _norm(self.ln_f, x)
        w = self.wte.weight
        if w.dtype == x.dtype:
            return x @ w.t()  # (B, T, V), readout tied to wte
        # a slice of the vocabulary at a time, cast into ``rows``: no full-precision copy of the embedding
        rows = torch.empty(_READOUT_ROWS, w.shape[1], dtype=x.dtype) if rows is None else rows
        logits = torch.empty(*x.shape[:-1], w.shape[0], dtype=x.dtype)  # (B, T, V)
        for i in range(0, w.shape[0], _READOUT_ROWS):
            part = rows[: min(_READOUT_ROWS, w.shape[0] - i)]
            logits[..., i : i + part.shape[0]] = x @ part.copy_(w[i : i + part.shape[0]]).t()
        return logits


class Exact(nn.Module):
    """A GPT-2 computing in float64 from its own float32 weights (the harness's exact laws)."""

    def __init__(self, model: GPT2):
        super().__init__()
        self.model = model

    def forward(self, input_ids, position_ids=None, token_type_ids=None, past=None):
        return self.model(input_ids, position_ids, token_type_ids, past, dtype=torch.float64)

    def chunked_logits(self, input_ids, chunk: int):
        return self.model.chunked_logits(input_ids, chunk, dtype=torch.float64)


def _linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` in x's precision (a no-op cast when they agree)."""
    return F.linear(x, layer.weight.to(x.dtype), layer.bias.to(x.dtype))


def _norm(layer: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, layer.normalized_shape, layer.weight.to(x.dtype), layer.bias.to(x.dtype), layer.eps)


_READOUT_ROWS = 8192  # vocabulary rows cast to the compute precision at a time

# Linear layers stored "Conv1D" style, (in_features, out_features), in the checkpoint.
_CONV1D = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
# Buffers a Hugging Face checkpoint may carry that hold no learned weight.
_BUFFERS = ("attn.bias", "attn.masked_bias")


def to_hf_state_dict(model: GPT2) -> dict[str, torch.Tensor]:
    """The model's weights in the course checkpoint's exact key layout."""
    cfg = model.config
    out: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        t = tensor.detach().clone()
        if name.endswith(".weight") and name.rsplit(".", 1)[0].split(".", 2)[-1] in _CONV1D:
            t = t.t().contiguous()
        out[name] = t
    mask = torch.tril(torch.ones(cfg.n_ctx, cfg.n_ctx, dtype=torch.uint8)).view(1, 1, cfg.n_ctx, cfg.n_ctx)
    for i in range(cfg.n_layer):
        out[f"h.{i}.attn.bias"] = mask
    return out


def load_state_dict_hf(model: GPT2, state: dict[str, torch.Tensor]) -> GPT2:
    """Copy a checkpoint's tensors into ``model`` with explicit transposes and shape checks."""
    own = model.state_dict()
    extra = sorted(k for k in state if k not in own and not k.endswith(_BUFFERS) and k != "lm_head.weight")
    missing = sorted(k for k in own if k not in state)
    if extra or missing:
        raise ValueError(f"checkpoint keys do not match GPT-2: missing {missing[:5]}, unexpected {extra[:5]}")
    if "lm_head.weight" in state and not torch.equal(state["lm_head.weight"], state["wte.weight"]):
        raise ValueError("checkpoint's lm_head.weight differs from wte.weight; the readout must be tied")
    with torch.no_grad():
        for name, target in own.items():
            src = state[name]
            if name.endswith(".weight") and name.rsplit(".", 1)[0].split(".", 2)[-1] in _CONV1D:
                src = src.t()
            if tuple(src.shape) != tuple(target.shape):
                raise ValueError(f"checkpoint tensor {name} has shape {tuple(src.shape)}, expected {tuple(target.shape)}")
            target.copy_(src)
    return model
