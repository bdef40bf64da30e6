"""The GPT-2 module: calling convention, KV cache, synthetic determinism, checkpoint format."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from autograder.errors import ConfigError
from autograder.q6.model import Exact, GPT2Config
from autograder.q6.grading_models import build_model, load_checkpoint, save_checkpoint
from autograder.q6.synthetic import synthetic_gpt2, uniform

SMALL = GPT2Config(n_layer=2, n_embd=32, n_head=4, n_positions=64, n_ctx=64)


def test_calling_convention_shapes_and_dtype():
    model = synthetic_gpt2(SMALL, seed=3)
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    logits, presents = model(ids)
    assert logits.shape == (1, 5, 50257) and logits.dtype == torch.float32
    assert len(presents) == SMALL.n_layer
    assert presents[0].shape == (2, 1, SMALL.n_head, 5, SMALL.n_embd // SMALL.n_head)


def test_kv_cache_gives_the_full_forward_logits():
    model = synthetic_gpt2(SMALL, seed=3)
    ids = torch.tensor([[10, 20, 30, 40, 50, 60]])
    with torch.no_grad():
        full, _ = model(ids)
        _, past = model(ids[:, :3])
        steps = []
        for t in range(3, 6):
            step, past = model(ids[:, t : t + 1], past=past)
            steps.append(step[0, -1])
    torch.testing.assert_close(torch.stack(steps), full[0, 3:], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_chunked_logits_a_layer_at_a_time_equal_chunks_through_the_cache(dtype):
    model = synthetic_gpt2(SMALL, seed=3)
    runner = Exact(model) if dtype == torch.float64 else model
    ids = torch.randint(0, SMALL.vocab_size, (1, 23), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, past = [], None
        for a in range(0, 23, 5):
            logits, past = runner(ids[:, a : a + 5], past=past)
            want.append((a, logits))
        got = list(runner.chunked_logits(ids, 5))
    assert [a for a, _ in got] == [a for a, _ in want]
    for (_, g), (_, w) in zip(got, want):
        assert g.dtype == dtype and torch.equal(g, w)  # the same operations on the same shapes


def test_synthetic_weights_depend_only_on_the_seed():
    a, b, c = synthetic_gpt2(SMALL, 7), synthetic_gpt2(SMALL, 7), synthetic_gpt2(SMALL, 8)
    for (name, pa), pb, pc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.transformer.wte.weight, c.transformer.wte.weight)


def test_synthetic_weights_drawn_in_blocks_are_the_same_stream():
    u = np.random.Generator(np.random.PCG64(5)).random(size=(301, 7), dtype=np.float64)
    want = torch.from_numpy(((2.0 * u - 1.0) * 0.25).astype(np.float32))  # the stream's definition, at once
    for block in (64, 10 ** 9):
        got = uniform(np.random.Generator(np.random.PCG64(5)), (301, 7), 0.25, block=block)
        assert got.dtype == torch.float32 and torch.equal(got, want), block


def test_synthetic_logits_are_sharp_enough_for_top_k_and_temperature_to_matter():
    model = build_model({"kind": "synthetic", "seed": 1, "n_layer": 2, "n_embd": 64, "n_head": 4})
    with torch.no_grad():
        logits, _ = model(torch.tensor([[464, 3290, 318, 257, 922]]))
    p = torch.softmax(logits[0, -1].double(), -1)
    top40 = p.topk(40).values.sum().item()
    assert 0.05 < top40 < 0.95, "top-k must cut real mass but keep a real law"
    law = lambda temp: torch.softmax(p.topk(40).values.log() / temp, -1)  # noqa: E731
    assert 0.5 * (law(1.0) - law(2.0)).abs().sum().item() > 0.1, "temperature must move the law"


def test_checkpoint_round_trip_is_bit_exact_in_the_course_key_layout(tmp_path):
    model = synthetic_gpt2(SMALL, seed=5)
    path = tmp_path / "gpt2-pytorch_model.bin"
    digest = save_checkpoint(model, path)
    state = torch.load(path, weights_only=True)
    assert "h.0.attn.c_attn.weight" in state and "h.1.attn.bias" in state and "lm_head.weight" not in state
    assert state["h.0.attn.c_attn.weight"].shape == (SMALL.n_embd, 3 * SMALL.n_embd)  # Conv1D: (in, out)
    loaded = load_checkpoint(path, digest, SMALL)
    for (name, p), q in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(p, q), name


def test_checkpoint_with_wrong_sha256_is_refused(tmp_path):
    path = tmp_path / "model.bin"
    save_checkpoint(synthetic_gpt2(SMALL, seed=5), path)
    with pytest.raises(ConfigError, match="sha256"):
        load_checkpoint(path, "0" * 64, SMALL)


def test_checkpoint_of_another_shape_is_refused(tmp_path):
    path = tmp_path / "model.bin"
    save_checkpoint(synthetic_gpt2(SMALL, seed=5), path)
    with pytest.raises(ValueError, match="shape"):
        load_checkpoint(path, None, GPT2Config(n_layer=2, n_embd=64, n_head=4, n_positions=64, n_ctx=64))
