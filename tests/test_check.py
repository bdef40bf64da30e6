"""The student's check: reference answers recorded by build stand in for the reference code."""
from __future__ import annotations

import numpy as np
import pytest

from autograder.student_check import AnswerBook
from autograder.context import ReferenceCache
from autograder.errors import ConfigError
from conftest import REFERENCE

REQUEST = ("sample", "sample", {"seeds": [1, 2], "prompts": [np.arange(5, dtype=np.int64).reshape(1, 5)]})


def test_answers_are_keyed_by_the_request_alone_and_stored_without_pickle(tmp_path):
    book = AnswerBook()
    key = book.key_for({"sample.py": REFERENCE / "sample.py"}, *REQUEST)
    assert key == book.key_for({}, *REQUEST) != ReferenceCache().key_for({"sample.py": REFERENCE / "sample.py"}, *REQUEST)
    book.put(key, {"tokens": [np.arange(7, dtype=np.int64)]})
    book.put("unused", {"tokens": []})
    assert book.save(tmp_path / "book.bin", keys={key}) == 1
    assert not (tmp_path / "book.bin").read_bytes().startswith(b"\x80")  # not a pickle
    loaded = AnswerBook.load(tmp_path / "book.bin")
    assert np.array_equal(loaded.get(key)["tokens"][0], np.arange(7))
    assert loaded.used == {key}


def test_a_request_missing_from_a_strict_book_is_a_loud_harness_error(tmp_path):
    AnswerBook().save(tmp_path / "book.bin")
    strict = AnswerBook.load(tmp_path / "book.bin", strict=True)
    with pytest.raises(ConfigError, match="rebuild"):
        strict.get("missing")


def test_an_unreadable_book_is_a_loud_harness_error(tmp_path):
    (tmp_path / "bad.bin").write_bytes(b"not a book")
    with pytest.raises(ConfigError, match="rebuild the student bundle"):
        AnswerBook.load(tmp_path / "bad.bin")
