"""Conformance: every grading model behaves as the course's GPT-2 module does for student code.

One test per row of the fact sheet on the course's module (calling it, inputs, positions and
token types, the cache, the module, the config), each run on every model kind exactly as a
worker receives it: synthetic GPT-2 mapped from the grade's store, a checkpoint file in the
course's key layout, a designed profile law and the n-gram text model.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from autograder.q6.model import GPT2Config
from autograder.q6.grading_models import ModelCache, model_config, save_checkpoint
from autograder.q6.synthetic import synthetic_gpt2

V = 50257
KINDS = ("synthetic", "checkpoint", "profile", "text")
TINY = GPT2Config(n_layer=2, n_embd=32, n_head=4)
IDS = torch.tensor([[464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13]])  # 10 tokens


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("course-model")
    path = folder / "gpt2-tiny.bin"
    digest = save_checkpoint(synthetic_gpt2(TINY, seed=4, logit_scale=3.0), path)
    shape = {"n_layer": TINY.n_layer, "n_embd": TINY.n_embd, "n_head": TINY.n_head}
    return {
        "synthetic": {"kind": "synthetic", "seed": 1, "n_layer": 2, "n_embd": 64, "n_head": 4, "logit_scale": 3.0},
        "checkpoint": {"kind": "checkpoint", "path": str(path), "sha256": digest, **shape},
        "profile": {"kind": "profile", "salt": 11, "top_k": 40, "head": 0.7, "spread": 1.0, "beyond": 0.3},
        "text": {"kind": "text"},
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory, specs):
    """The grade's model store, written by the harness as in a grade."""
    folder = tmp_path_factory.mktemp("store")
    ModelCache(folder, writer=True).share(specs.values())
    return folder


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


@pytest.fixture
def make(kind, specs, store):
    """A fresh model of this kind as a worker gets it (mapped from the store where it is one)."""
    return lambda: ModelCache(store).get(specs[kind])


@pytest.fixture
def model(make):
    return make()


@pytest.fixture
def cfg(kind, specs):
    return model_config(specs[kind])


def run(model, ids, *args, **kw):
    with torch.no_grad():
        return model(ids, *args, **kw)


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a.double(), b.double(), rtol=0, atol=1e-4)


def law_tv(a: torch.Tensor, b: torch.Tensor) -> float:
    """Total variation between the next-token laws two logit rows induce."""
    return 0.5 * float((a.double().softmax(-1) - b.double().softmax(-1)).abs().sum())


# -- calling it ------------------------------------------------------------------------------

def test_every_course_call_form_works_and_agrees(model):
    full, _ = run(model, IDS)
    _, past = run(model, IDS[:, :6])
    with torch.no_grad():
        forms = [model(IDS[:, 6:], past=past)[0], model(IDS[:, 6:], None, None, past)[0],
                 model.forward(IDS[:, 6:], past=past)[0]]
        assert same(model(input_ids=IDS)[0], full)
    assert all(same(f, full[:, 6:]) for f in forms)


def test_past_passed_positionally_lands_in_position_ids_and_fails(model):
    _, past = run(model, IDS[:, :6])
    with pytest.raises(AttributeError, match="'list' object has no attribute 'view'"):
        run(model, IDS[:, 6:7], past)


@pytest.mark.parametrize("keyword", ["use_cache", "attention_mask", "past_key_values"])
def test_hugging_face_keywords_are_refused(model, keyword):
    with pytest.raises(TypeError):
        model(IDS, **{keyword: None})


def test_it_returns_a_plain_pair_of_logits_and_presents(model):
    out = run(model, IDS)
    assert type(out) is tuple and len(out) == 2 and not hasattr(out, "logits")
    assert isinstance(out[0], torch.Tensor) and isinstance(out[1], list)


# -- inputs ----------------------------------------------------------------------------------

def test_int64_and_int32_ids_work_and_agree(model):
    assert same(run(model, IDS.int())[0], run(model, IDS)[0])


@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 1, 10), (2, 1, 10)])
def test_inputs_of_any_leading_shape_are_flattened(model, cfg, shape):
    ids = IDS[:, : shape[-1]].expand(int(np.prod(shape[:-1])), -1).reshape(shape)
    logits, presents = run(model, ids)
    assert logits.shape == shape + (V,)
    assert same(logits.reshape(-1, shape[-1], V)[0:1], run(model, IDS[:, : shape[-1]])[0])
    assert presents[0].shape[1] == int(np.prod(shape[:-1]))


def test_a_3d_token_by_token_log_likelihood_works(model):
    """A real student's idiom: x = text.transpose(0, 1)[None, i, None] of shape (1, 1, 1)."""
    text, past, steps = IDS, None, []
    with torch.no_grad():
        for i in range(text.size(1)):
            logits, past = model(text.transpose(0, 1)[None, i, None], past=past)
            steps.append(logits[-1, -1, -1])
    assert same(torch.stack(steps), run(model, IDS)[0][0])


@pytest.mark.parametrize("bad", [torch.tensor([5, 6, 7]), torch.zeros(1, 0, dtype=torch.long)], ids=["1d", "empty"])
def test_1d_and_empty_inputs_fail(model, bad):
    with pytest.raises(RuntimeError):
        run(model, bad)


@pytest.mark.parametrize("dtype", [torch.int16, torch.uint8, torch.float32])
def test_ids_of_other_dtypes_fail(model, dtype):
    with pytest.raises(RuntimeError):
        run(model, IDS.to(dtype))


@pytest.mark.parametrize("bad", [V, -1])
def test_ids_outside_the_vocabulary_fail(model, bad):
    with pytest.raises(IndexError):
        run(model, torch.tensor([[5, bad]]))


@pytest.mark.parametrize("convert", [lambda t: t.tolist(), lambda t: t.numpy()], ids=["list", "numpy"])
def test_lists_and_numpy_arrays_fail(model, convert):
    with pytest.raises((AttributeError, TypeError)):
        run(model, convert(IDS))


def test_positions_past_n_positions_fail_in_one_call(model, cfg):
    with pytest.raises(IndexError):
        run(model, torch.zeros(1, cfg.n_positions + 1, dtype=torch.long))


def test_positions_past_n_positions_fail_through_the_cache(model, cfg):
    _, past = run(model, torch.zeros(1, cfg.n_positions, dtype=torch.long))
    with pytest.raises(IndexError):
        run(model, torch.zeros(1, 1, dtype=torch.long), past=past)


# -- positions and token types ---------------------------------------------------------------

def test_explicit_default_positions_equal_the_default(model):
    full, _ = run(model, IDS, position_ids=torch.arange(10).unsqueeze(0))
    _, past = run(model, IDS[:, :6])
    step, _ = run(model, IDS[:, 6:], past=past, position_ids=torch.arange(6, 10).unsqueeze(0))
    assert same(full, run(model, IDS)[0]) and same(step, full[:, 6:])


@pytest.mark.parametrize("wrong", ["zeros", "off_by_one", "restart"])
def test_wrong_positions_change_the_law(model, wrong):
    want, _ = run(model, IDS)
    if wrong == "restart":   # positions restarting at 0 at every step through the cache
        past, rows = None, []
        for i in range(10):
            logits, past = run(model, IDS[:, i : i + 1], past=past, position_ids=torch.zeros(1, 1, dtype=torch.long))
            rows.append(logits)
        got = torch.cat(rows, dim=1)
    else:
        positions = torch.zeros(1, 10, dtype=torch.long) if wrong == "zeros" else torch.arange(1, 11).unsqueeze(0)
        got, _ = run(model, IDS, position_ids=positions)
    assert max(law_tv(got[0, t], want[0, t]) for t in range(2, 10)) > 0.2


@pytest.mark.parametrize("types", [torch.zeros(1, 10, dtype=torch.long), torch.ones(1, 10, dtype=torch.long)],
                         ids=["zeros", "ones"])
def test_token_types_change_the_law(model, types):
    want, _ = run(model, IDS)
    got, _ = run(model, IDS, token_type_ids=types)
    assert max(law_tv(got[0, t], want[0, t]) for t in range(2, 10)) > 0.2


# -- the cache -------------------------------------------------------------------------------

def test_presents_are_n_layer_float32_key_value_stacks(model, cfg):
    _, presents = run(model, IDS)
    hs = cfg.n_embd // cfg.n_head
    assert len(presents) == cfg.n_layer
    assert all(p.dtype == torch.float32 and p.shape == (2, 1, cfg.n_head, 10, hs) for p in presents)
    k, v = presents[0]
    assert k.shape == v.shape == (1, cfg.n_head, 10, hs) and presents[0].size(3) == presents[0][0].size(-2) == 10


@pytest.mark.parametrize("reshape", [
    lambda p: p, lambda p: tuple(p), lambda p: [(layer[0], layer[1]) for layer in p],
    lambda p: [[layer[0], layer[1]] for layer in p], lambda p: torch.stack(p),
    lambda p: [layer.detach() for layer in p], lambda p: [layer.clone() for layer in p],
    lambda p: [layer.contiguous() for layer in p],
], ids=["as-is", "tuple", "kv-tuples", "kv-lists", "stacked", "detach", "clone", "contiguous"])
def test_every_course_cache_form_continues_the_text(model, reshape):
    full, _ = run(model, IDS)
    _, past = run(model, IDS[:, :6])
    step, _ = run(model, IDS[:, 6:], past=reshape(past))
    assert same(step, full[:, 6:])


@pytest.mark.parametrize("grow", [
    lambda p, k: [layer.expand(-1, k, -1, -1, -1) for layer in p],
    lambda p, k: [layer.repeat(1, k, 1, 1, 1) for layer in p],
    lambda p, k: [layer.repeat_interleave(k, dim=1) for layer in p],
], ids=["expand", "repeat", "repeat_interleave"])
def test_the_cache_batch_can_be_grown_to_score_several_continuations(model, grow):
    _, past = run(model, IDS[:, :6])
    nxt = torch.tensor([[11], [2068], [13]])
    batched, presents = run(model, nxt, past=grow(past, 3))
    assert presents[0].shape[1] == 3
    for row in range(3):
        assert same(batched[row : row + 1], run(model, nxt[row : row + 1], past=past)[0])


def test_slicing_the_cache_in_time_gives_the_prefix_cache(model):
    _, past = run(model, IDS)
    sliced = [layer[:, :, :, :6] for layer in past]
    assert same(run(model, IDS[:, 6:7], past=sliced)[0], run(model, IDS[:, :7])[0][:, 6:])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_a_cache_cast_to_another_dtype_fails(model, dtype):
    _, past = run(model, IDS[:, :6])
    with pytest.raises(RuntimeError, match="expected scalar type"):
        run(model, IDS[:, 6:], past=[layer.to(dtype) for layer in past])


def test_presents_are_fresh_so_a_reused_input_buffer_changes_nothing(model):
    full, _ = run(model, IDS)
    buffer = IDS[:, :1].clone()
    past, rows = None, []
    for i in range(10):
        buffer[0, 0] = IDS[0, i]                      # one input tensor written step after step
        logits, past = run(model, buffer, past=past)
        rows.append(logits)
    assert same(torch.cat(rows, dim=1), full)


# -- the module ------------------------------------------------------------------------------

def test_module_attributes_are_the_courses(model):
    for name in ("wte", "wpe", "h", "ln_f"):
        assert hasattr(model.transformer, name)
    assert isinstance(model.readout_head, torch.nn.Module)
    for name in ("config", "device", "dtype"):
        assert not hasattr(model, name)


def test_it_has_parameters_buffers_and_transformer_keys(model):
    p = next(model.parameters())
    assert p.device.type == "cpu" and p.dtype == torch.float32
    assert next(model.buffers()).device.type == "cpu"
    keys = list(model.state_dict())
    assert "transformer.wte.weight" in keys and "transformer.h.0.attn.c_attn.weight" in keys
    assert all(k.startswith(("transformer.", "readout_head.")) for k in keys)


@pytest.mark.parametrize("cast", [lambda m: m.double(), lambda m: m.to(torch.float64), lambda m: m.half()],
                         ids=["double", "to-float64", "half"])
def test_casting_the_module_makes_it_compute_in_that_dtype(make, cast):
    model = make()
    want, _ = run(model, IDS)
    cast(model)
    dtype = next(model.parameters()).dtype
    got, presents = run(model, IDS)
    assert got.dtype == dtype and presents[0].dtype == dtype
    tol = 1e-4 if dtype == torch.float64 else 0.15
    assert torch.allclose(got.double().log_softmax(-1), want.double().log_softmax(-1), atol=tol)


def test_a_float64_default_dtype_leaves_it_working_in_float32(model):
    want, _ = run(model, IDS)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        got, presents = run(model, IDS)
        _, past = run(model, IDS[:, :6])
        step, _ = run(model, IDS[:, 6:], past=past)
    finally:
        torch.set_default_dtype(previous)
    assert got.dtype == presents[0].dtype == torch.float32 and same(got, want) and same(step, want[:, 6:])


def test_it_is_handed_over_in_eval_mode(model):
    assert model.training is False


def test_outputs_join_autograd_outside_no_grad_only(model):
    logits, _ = model(IDS)
    assert logits.requires_grad
    with pytest.raises(RuntimeError):
        logits.numpy()
    torch.log_softmax(logits[0, -1], -1)[13].backward()
    with torch.no_grad():
        assert not model(IDS)[0].requires_grad
    with torch.inference_mode():
        assert same(model(IDS)[0], logits.detach())


def test_it_touches_no_random_generator_and_keeps_no_state(model):
    state = torch.random.get_rng_state()
    first, _ = run(model, IDS)
    run(model, IDS[:, :4].flip(1))
    again, _ = run(model, IDS)
    assert torch.equal(torch.random.get_rng_state(), state) and torch.equal(first, again)


# -- the config ------------------------------------------------------------------------------

def test_the_config_describes_the_model_handed_over(model, cfg):
    ns = cfg.namespace()
    _, presents = run(model, IDS)
    assert ns.vocab_size == V and ns.top_k > 0 and ns.n_positions == ns.n_ctx == 1024
    assert ns.n_layer == len(presents) and ns.n_head == presents[0].size(2)
    assert ns.n_embd == model.transformer.wte.weight.shape[1] == ns.n_head * presents[0].size(-1)
