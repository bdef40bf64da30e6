"""GPT-2 as the course's module: the one calling convention every grading model shares.

``GPT2`` is what student code receives, whatever law it draws from.  It behaves as the course's
module does (``../shared/docs/course-model.md``), once, for every model kind:

- ``model(input_ids, position_ids=None, token_type_ids=None, past=None) -> (logits, presents)``,
  ``input_ids`` of any leading shape (flattened to (-1, T), logits of shape
  ``input_ids.shape + (V,)``); token, position and token-type lookups are real embeddings, so
  bad ids, dtypes and positions fail with the errors the course's module raises;
- ``presents``: ``n_layer`` fresh tensors (2, B, n_head, T_total, head_dim) in the model's dtype;
  a layer reads ``layer_past[0]`` and ``layer_past[1]``, the cache length is
  ``past[0][0].size(-2)``, so tuples, ``torch.stack(presents)`` and batch expansion all work;
- ``model.transformer`` (``wte``, ``wpe``, ``h``, ``ln_f``) and ``model.readout_head`` (tied
  to ``wte``), parameters and a causal-mask buffer, ``model.double()`` / ``.half()`` change the
  dtype it computes in; no ``config``, ``device`` or ``dtype`` attribute.

Without a ``law`` the transformer computes the logits (synthetic weights or the course's
checkpoint).  With one (``autograder.q6.history``), a designed law computes them from the
history of (token, position, token type) the cache carries, so designed models respond to
positions and token types as a GPT-2 does.  Module names follow Hugging Face's GPT-2 under
``transformer.``, so a checkpoint loads with a plain loop (``load_state_dict_hf``).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from types import SimpleNamespace

import torch
import torch.nn as nn
from torch.nn import functional as F

from autograder.q6.history import designed_forward
from autograder.q6.vocabulary import VOCAB_SIZE


@dataclass(frozen=True)
class GPT2Config:
    """Field names are the course's ``config.yml`` keys, so student code reads them unchanged."""

    seed: int = 20190929            # the course's seed; synthetic models derive weights from it
    vocab_size: int = VOCAB_SIZE    # GPT-2 BPE vocabulary, kept in every grading model
    n_positions: int = 1024         # rows of the position table
    n_ctx: int = 1024               # context limit students may assume: longer texts fail
    n_embd: int = 768               # residual width
    n_layer: int = 12               # transformer blocks, and tensors in the KV cache
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


# The shape of a designed model: the smallest course-layout cache a history code fits in
# (head_dim 16 >= ``history.DIGITS``).
DESIGNED_SHAPE = dict(n_layer=2, n_embd=16, n_head=1)


class Attention(nn.Module):
    def __init__(self, cfg: GPT2Config):
        super().__init__()
        self.n_head = cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)

    def forward(self, x: torch.Tensor, layer_past, causal: torch.Tensor):
        B, T, C = x.shape
        q, k, v = _linear(self.c_attn, x).split(C, dim=2)
        hs = C // self.n_head
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        present = torch.stack((k, v))                      # (2, B, nh, T, hs)
        if layer_past is not None:  # a (2, ...) tensor, or a (k, v) pair the course's module also takes
            if not isinstance(layer_past, torch.Tensor):
                layer_past = torch.stack((layer_past[0], layer_past[1]))
            present = torch.cat((layer_past, present), dim=3)  # (2, B, nh, P+T, hs)
        k, v = present[0], present[1]                      # (B, nh, P+T, hs)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)    # (B, nh, T, P+T)
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

    def forward(self, x, layer_past, causal):
        a, present = self.attn(_norm(self.ln_1, x), layer_past, causal)
        x = x + a
        return x + self.mlp(_norm(self.ln_2, x)), present


class Transformer(nn.Module):
    """Hugging Face's ``GPT2Model`` names: the course checkpoint's keys, without a prefix."""

    def __init__(self, cfg: GPT2Config):
        super().__init__()
        # Uninitialised (every maker overwrites them): no init kernel, which on the meta device
        # would load torch's Python meta kernels (~75 MiB in every process that builds a model).
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd, _weight=torch.empty(cfg.vocab_size, cfg.n_embd))
        self.wpe = nn.Embedding(cfg.n_positions, cfg.n_embd, _weight=torch.empty(cfg.n_positions, cfg.n_embd))
        self.h = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.register_buffer("causal_mask", _causal(cfg.n_ctx), persistent=False)  # (n_ctx, n_ctx)

    def embed(self, ids, positions, token_types, dtype) -> torch.Tensor:
        """(B, T) ids -> (B, T, C) in ``dtype``; the lookups fail as the course's do on bad input."""
        x = self.wte(ids).to(dtype) + self.wpe(positions).to(dtype)
        if token_types is not None:
            x = x + self.wte(token_types).to(dtype)
        return x


class ReadoutHead(nn.Module):
    """The logits: the final hidden state times the token embedding (``decoder`` is tied to ``wte``)."""

    def __init__(self, wte: nn.Embedding):
        super().__init__()
        self.decoder = nn.Linear(wte.embedding_dim, wte.num_embeddings, bias=False, device="meta")
        self.decoder.weight = wte.weight

    def forward(self, x: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        w = self.decoder.weight
        if w.dtype == x.dtype:
            return x @ w.t()  # (B, T, V)
        # a slice of the vocabulary at a time, cast into ``rows``: no full-precision copy of the embedding
        rows = torch.empty(_READOUT_ROWS, w.shape[1], dtype=x.dtype) if rows is None else rows
        logits = torch.empty(*x.shape[:-1], w.shape[0], dtype=x.dtype)  # (B, T, V)
        for i in range(0, w.shape[0], _READOUT_ROWS):
            part = rows[: min(_READOUT_ROWS, w.shape[0] - i)]
            logits[..., i : i + part.shape[0]] = x @ part.copy_(w[i : i + part.shape[0]]).t()
        return logits


class GPT2(nn.Module):
    """The module student code is handed: the course's calling convention over any law.

    ``run(..., dtype=)`` is the harness's own entry: the same computation in another precision
    from these weights (float64 laws from float32 weights, without a float64 copy).
    """

    def __init__(self, cfg: GPT2Config, law=None):
        super().__init__()
        self.transformer = Transformer(cfg)
        self.readout_head = ReadoutHead(self.transformer.wte)
        self.shape = cfg   # not ``config``: the course's module has no such attribute
        self.law = law     # a designed law (plain object, not a module), or None for the transformer's

    @classmethod
    def unfilled(cls, cfg: GPT2Config, law=None) -> "GPT2":
        """A model whose weights are allocated but not initialised (every maker overwrites them),
        built without touching any random generator."""
        with torch.device("meta"):
            model = cls(cfg, law)
        model.to_empty(device="cpu")
        return model.restore_buffers()

    @classmethod
    def designed(cls, law, top_k: int = 40) -> "GPT2":
        """``law`` as the course's module: a GPT-2 of ``DESIGNED_SHAPE`` whose logits are the law's.

        Its weights (zeros, LayerNorm gains one) serve the module's surface only: the embedding
        lookups that check inputs, ``parameters()``, ``double()``."""
        cfg = GPT2Config(top_k=top_k, **DESIGNED_SHAPE)
        model = cls.unfilled(cfg, law)
        # Every token embeds to zero through one row, so the table costs no memory per token.
        model.transformer.wte.weight = nn.Parameter(torch.zeros(1, cfg.n_embd).expand(cfg.vocab_size, cfg.n_embd))
        model.restore_buffers()
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name != "transformer.wte.weight":
                    p.fill_(1.0 if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")) else 0.0)
        return model.eval()

    def restore_buffers(self) -> "GPT2":
        """Tie the readout to ``wte`` and make the causal mask: after weights were assigned."""
        self.readout_head.decoder.weight = self.transformer.wte.weight
        self.transformer.causal_mask = _causal(self.shape.n_ctx)
        return self

    def forward(self, input_ids, position_ids=None, token_type_ids=None, past=None):
        return self.run(input_ids, position_ids, token_type_ids, past)

    def run(self, input_ids, position_ids=None, token_type_ids=None, past=None, dtype=None):
        cfg, tr = self.shape, self.transformer
        dt = dtype or tr.wte.weight.dtype
        shape = input_ids.size()
        T = input_ids.size(-1)
        past_len = 0 if past is None else past[0][0].size(-2)
        if position_ids is None:
            position_ids = torch.arange(past_len, past_len + T, dtype=torch.long, device=input_ids.device)
            position_ids = position_ids.unsqueeze(0).expand_as(input_ids)
        ids = input_ids.view(-1, T)                                              # (B, T)
        positions = position_ids.view(-1, position_ids.size(-1))
        types = None if token_type_ids is None else token_type_ids.view(-1, token_type_ids.size(-1))
        x = tr.embed(ids, positions, types, dt)                                  # (B, T, C)
        if past_len + T > cfg.n_ctx:
            raise RuntimeError(f"The size of tensor a ({past_len + T}) must match the size of tensor b "
                               f"({cfg.n_ctx}) at non-singleton dimension 3")
        if past is not None:
            _check_cache_dtype(past, dt)
        if self.law is not None:
            logits, presents = designed_forward(self.law, cfg, ids, positions, types, past, dt)
            if torch.is_grad_enabled():  # outputs join the autograd graph, as a network's do
                anchor = tr.ln_f.bias[0] * 0
                logits, presents = logits + anchor, [p + anchor for p in presents]
        else:
            causal = tr.causal_mask[past_len : past_len + T, : past_len + T]     # (T, P+T)
            presents = []
            for i, block in enumerate(tr.h):
                x, present = block(x, None if past is None else past[i], causal)
                presents.append(present)
            logits = self.readout_head(_norm(tr.ln_f, x))                      # (B, T, V)
        return logits.view(*shape, cfg.vocab_size), presents

    @torch.no_grad()
    def chunked_logits(self, input_ids, chunk: int, dtype=None):
        """Yield (start, logits (B, c, V)) of ``chunk`` positions at a time (harness only).

        For the transformer: the same operations on the same shapes as feeding the chunks
        through ``forward`` with ``past``, so the same values, but computed a layer at a time:
        one layer's KV cache is held, never the whole model's (GPT-2 small in float64: 13 MB
        instead of 150 MB, twice over while the caches grow).  A designed law goes through the
        cache."""
        starts = range(0, input_ids.size(1), chunk)
        if self.law is not None:
            past = None
            for a in starts:
                logits, past = self.run(input_ids[:, a : a + chunk], past=past, dtype=dtype)
                yield a, logits
            return
        if not starts:
            return
        tr = self.transformer
        dt = dtype or tr.wte.weight.dtype
        xs = []
        for a in starts:
            part = input_ids[:, a : a + chunk]
            xs.append(tr.embed(part, torch.arange(a, a + part.size(1)).expand_as(part), None, dt))  # (B, c, C)
        for block in tr.h:
            weights = {name: p.to(dt) for name, p in block.named_parameters()}  # cast once, not per chunk
            past = None
            for i, (a, x) in enumerate(zip(starts, xs)):
                causal = tr.causal_mask[a : a + x.size(1), : a + x.size(1)]
                xs[i], past = torch.func.functional_call(block, weights, (x, past, causal))
            weights = past = None
        # one buffer for the readout's casts of the vocabulary, when the precisions differ
        rows = None if dt == tr.wte.weight.dtype else torch.empty(_READOUT_ROWS, self.shape.n_embd, dtype=dt)
        for a, x in zip(starts, xs):
            yield a, self.readout_head(_norm(tr.ln_f, x), rows)


class Exact(nn.Module):
    """A grading model computing in float64 from its own weights (the harness's exact laws)."""

    def __init__(self, model: GPT2):
        super().__init__()
        self.model = model
        self.law = model.law

    def forward(self, input_ids, position_ids=None, token_type_ids=None, past=None):
        return self.model.run(input_ids, position_ids, token_type_ids, past, dtype=torch.float64)

    def chunked_logits(self, input_ids, chunk: int):
        return self.model.chunked_logits(input_ids, chunk, dtype=torch.float64)


def _causal(n_ctx: int) -> torch.Tensor:
    # On the CPU even while a model is built on the meta device, for the same reason as the embeddings.
    return torch.ones(n_ctx, n_ctx, dtype=torch.bool, device="cpu").tril()


def _check_cache_dtype(past, dtype: torch.dtype) -> None:
    """A cache cast to another dtype than the model computes in fails, as in the course's module."""
    for layer in past:
        for half in (layer[0], layer[1]):
            if half.dtype != dtype:
                raise RuntimeError(f"expected scalar type {_TYPE_NAMES.get(dtype, dtype)} but found "
                                   f"{_TYPE_NAMES.get(half.dtype, half.dtype)}")


_TYPE_NAMES = {torch.float32: "Float", torch.float64: "Double", torch.float16: "Half", torch.bfloat16: "BFloat16"}


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


def _is_conv1d(name: str) -> bool:
    return name.endswith(".weight") and name.rsplit(".", 1)[0].split(".", 2)[-1] in _CONV1D


def to_hf_state_dict(model: GPT2) -> dict[str, torch.Tensor]:
    """The model's weights in the course checkpoint's exact key layout (no prefix, Conv1D, masks)."""
    cfg = model.shape
    out: dict[str, torch.Tensor] = {}
    for name, tensor in model.transformer.state_dict().items():
        t = tensor.detach().clone()
        out[name] = t.t().contiguous() if _is_conv1d(name) else t
    mask = torch.tril(torch.ones(cfg.n_ctx, cfg.n_ctx, dtype=torch.uint8)).view(1, 1, cfg.n_ctx, cfg.n_ctx)
    for i in range(cfg.n_layer):
        out[f"h.{i}.attn.bias"] = mask
    return out


def load_state_dict_hf(model: GPT2, state: dict[str, torch.Tensor]) -> GPT2:
    """Copy a checkpoint's tensors into ``model.transformer`` with explicit transposes and shape checks."""
    own = model.transformer.state_dict()
    extra = sorted(k for k in state if k not in own and not k.endswith(_BUFFERS) and k != "lm_head.weight")
    missing = sorted(k for k in own if k not in state)
    if extra or missing:
        raise ValueError(f"checkpoint keys do not match GPT-2: missing {missing[:5]}, unexpected {extra[:5]}")
    if "lm_head.weight" in state and not torch.equal(state["lm_head.weight"], state["wte.weight"]):
        raise ValueError("checkpoint's lm_head.weight differs from wte.weight; the readout must be tied")
    with torch.no_grad():
        for name, target in own.items():
            src = state[name].t() if _is_conv1d(name) else state[name]
            if tuple(src.shape) != tuple(target.shape):
                raise ValueError(f"checkpoint tensor {name} has shape {tuple(src.shape)}, expected {tuple(target.shape)}")
            target.copy_(src)
    return model
