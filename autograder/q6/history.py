"""A designed law behind the course's calling convention: its KV cache carries the history.

A designed law (``autograder.q6.designed``, ``autograder.q6.textmodel``) computes next-token
logits from the tokens seen so far.  To look like GPT-2 to student code, it is wrapped in
``autograder.q6.model.GPT2``, whose cache is the course's: ``n_layer`` float tensors
(2, B, n_head, T, head_dim).  Here each position of that cache holds, in base-32 digits (exact
in every float dtype, float16 included), the token id, the position id and the token type it
was fed with, plus a check digit.  So everything student code may do to a course cache
(stack it, split it into (k, v) pairs, expand or repeat its batch, slice its time axis, clone
it) does the same to the history, and a law never sees anything but a cache.

Positions and token types change the law as they change GPT-2's: a position is *canonical*
when it equals the token's index in the history and no token type was given; any other
position or type turns the token the law sees into another one (``effective_tokens``), so a
sampler or likelihood that passes wrong positions or token types draws from, or scores
against, another context's law.  With canonical inputs the law sees the tokens themselves.
"""
from __future__ import annotations

import torch


BASE = 32
_TOKEN, _POSITION, _TYPE = 4, 2, 4   # digits per field: 32**4 > 50257, 32**2 = 1024 positions
DIGITS = _TOKEN + _POSITION + _TYPE + 1  # the last digit checks the others
NO_TYPE = -1                         # token type of a position fed without token_type_ids
_SCRAMBLE = (2_654_435_761, 40_503, 97)


_WIDTHS = (_TOKEN, _POSITION, _TYPE)
_OFFSET = torch.tensor([0, 0, NO_TYPE])                                 # types are stored from 0
_FIELD = torch.tensor([f for f, n in enumerate(_WIDTHS) for _ in range(n)])    # (DIGITS - 1,) field of each digit
_PLACE = torch.tensor([BASE ** i for n in _WIDTHS for i in range(n)])          # (DIGITS - 1,) its place value
_GATHER = torch.stack([(_FIELD == f).long() * _PLACE for f in range(3)], dim=1)  # (DIGITS - 1, 3): digits -> fields
_INVALID = torch.tensor([-1, -1, NO_TYPE])                              # what an invalid position decodes to


def encode(triples: torch.Tensor, cfg, dtype: torch.dtype) -> list[torch.Tensor]:
    """(B, L, 3) long (token, position, type) -> ``n_layer`` caches (2, B, n_head, L, head_dim)."""
    digits = ((triples - _OFFSET)[..., _FIELD] // _PLACE) % BASE          # (B, L, DIGITS - 1)
    code = torch.cat((digits, digits.sum(-1, keepdim=True) % BASE), dim=-1)   # (B, L, DIGITS)
    head_dim = cfg.n_embd // cfg.n_head
    if head_dim < DIGITS:
        raise ValueError(f"a designed model needs head_dim >= {DIGITS}, got {head_dim}")
    row = torch.zeros(*code.shape[:2], head_dim, dtype=dtype)             # (B, L, hs)
    row[..., :DIGITS] = code.to(dtype)
    layer = row.unsqueeze(1).expand(-1, cfg.n_head, -1, -1)               # (B, nh, L, hs)
    return [torch.stack((layer, layer)) for _ in range(cfg.n_layer)]      # fresh (2, B, nh, L, hs) each


def decode(key: torch.Tensor) -> torch.Tensor:
    """A cache's key half (B, nh, P, hs) -> (B, P, 3) long triples; a position whose digits are
    not a valid code (a cache student code wrote into) decodes to token -1."""
    values = key[:, 0, :, :DIGITS].double()                               # (B, P, DIGITS)
    digits = values.round()
    valid = ((values - digits).abs() < 1e-3).all(-1) & ((digits >= 0) & (digits < BASE)).all(-1)
    d = digits.clamp(0, BASE - 1).long()
    valid &= d[..., :-1].sum(-1) % BASE == d[..., -1]
    fields = d[..., :-1] @ _GATHER + _OFFSET                               # (B, P, 3)
    return torch.where(valid.unsqueeze(-1), fields, _INVALID)


def effective_tokens(triples: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """(B, L, 3) -> (B, L) the tokens the law sees: each token itself where its position is
    canonical, else a token fixed by a hash of (token, position, type)."""
    tok, pos, typ = triples.unbind(-1)
    index = torch.arange(tok.size(1)).expand_as(tok)
    canonical = (pos == index) & (typ == NO_TYPE) & (tok >= 0)
    a, b, c = _SCRAMBLE
    scrambled = ((tok + 2) * a + (pos + 1) * b + (typ + 2) * c) % vocab_size
    return torch.where(canonical, tok, scrambled)


def designed_forward(law, cfg, ids: torch.Tensor, positions: torch.Tensor,
                     token_types: torch.Tensor | None, past, dtype: torch.dtype):
    """One call of a designed model on flattened (B, T) inputs: logits (B, T, V) and presents."""
    B, T = ids.shape
    types = torch.full_like(ids, NO_TYPE) if token_types is None else token_types.expand(B, T)
    new = torch.stack((ids.long(), positions.expand(B, T).long(), types.long()), dim=-1)   # (B, T, 3)
    triples = new if past is None else torch.cat((decode(past[0][0]), new), dim=1)       # (B, P+T, 3)
    history = effective_tokens(triples, cfg.vocab_size)                                   # (B, P+T)
    logits = law.logits(history, triples.size(1) - T, dtype)                              # (B, T, V)
    return logits, encode(triples, cfg, dtype)

