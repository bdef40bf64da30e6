"""The student template equals the reference outside the student blocks, every template block
raises NotImplementedError, and the reference solution is right on a tiny deterministic model."""
import importlib
import re
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from autograder.config import load_assignment

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "reference_solution"
TEMPLATE = ROOT / "student_template"
STUDENT_FILES = load_assignment().student_files
BLOCK = re.compile(r"(?ms)^[ \t]*### START CODE HERE ###\n(.*?)^[ \t]*### END CODE HERE ###\n")
V, TOP_K = 50, 5


def split_blocks(path):
    """(text outside the blocks, list of block bodies) of one file."""
    text = path.read_text()
    return BLOCK.split(text)[0::2], BLOCK.findall(text)


class TinyModel:
    """Course calling convention; the logits depend on the whole history, held in ``presents``."""

    def __init__(self):
        gen = torch.Generator().manual_seed(0)
        self.by_token = 3.0 * torch.randn(V, V, generator=gen)
        self.by_history = 2.0 * torch.randn(7, V, generator=gen)
        self.calls = []

    def __call__(self, input_ids, position_ids=None, token_type_ids=None, past=None):
        self.calls.append(tuple(input_ids.shape))
        history = input_ids if past is None else torch.cat([past, input_ids], dim=1)
        offset = history.size(1) - input_ids.size(1)
        rows = [self.by_token[history[0, i]] + self.by_history[int(history[0, :i + 1].sum()) % 7]
                for i in range(offset, history.size(1))]
        return torch.stack(rows).unsqueeze(0).float(), history


def full_logits(model, tokens):
    """float64 next-token logits after the token list ``tokens``, without using a cache."""
    logits, _ = model(torch.tensor([tokens]))
    return logits[0, -1].double()


def filtered_log_probs(logits):
    """float64 log-softmax after keeping the TOP_K largest entries."""
    kept = torch.full_like(logits, -float("inf"))
    idx = logits.topk(TOP_K).indices
    kept[idx] = logits[idx]
    return torch.log_softmax(kept, dim=-1)


def _is_submission(name):
    return name == "submission" or name.startswith("submission.")


def _import_as_submission(package_dir, tmp_path):
    """Import ``package_dir`` as the package ``submission``; restore sys.modules afterwards."""
    saved = {m: sys.modules.pop(m) for m in list(sys.modules) if _is_submission(m)}
    (tmp_path / "submission").symlink_to(package_dir, target_is_directory=True)
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module("submission")
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if _is_submission(m)]:
            del sys.modules[name]
        sys.modules.update(saved)


@pytest.fixture
def ref(tmp_path):
    yield from _import_as_submission(REFERENCE, tmp_path)


@pytest.fixture
def tpl(tmp_path):
    yield from _import_as_submission(TEMPLATE, tmp_path)


@pytest.fixture
def config():
    return SimpleNamespace(vocab_size=V, top_k=TOP_K)


@pytest.mark.parametrize("name", STUDENT_FILES + ("__init__.py",))
def test_identical_outside_blocks(name):
    ref_outside, ref_blocks = split_blocks(REFERENCE / name)
    tpl_outside, tpl_blocks = split_blocks(TEMPLATE / name)
    assert len(ref_blocks) == len(tpl_blocks)
    assert (len(ref_blocks) > 0) == (name != "__init__.py")
    assert ref_outside == tpl_outside
    if name == "classifier.py":
        assert "\nfrom submission.likelihood import log_likelihood\n" in ref_outside[0]


@pytest.mark.parametrize("name", STUDENT_FILES)
def test_every_template_block_raises(name):
    for body in split_blocks(TEMPLATE / name)[1]:
        code = textwrap.dedent(body)
        if code.startswith("THRESHOLD = None"):  # module level: the import must still work
            continue
        with pytest.raises(NotImplementedError):
            exec(compile(code, name, "exec"), {})


def test_template_functions_raise(tpl, config):
    sub, model, text = tpl, TinyModel(), torch.tensor([[1, 2, 3]])
    logits = sub.top_k_logits(model(text)[0][:, -1, :], TOP_K)
    calls = [lambda: sub.sample(model, text, config, 3),
             lambda: sub.temperature_scale(logits, model, text, config, 0.7, 1),
             lambda: sub.temperature_scale(logits, model, text, config, 0.7, 2),
             lambda: sub.log_likelihood(model, text),
             lambda: sub.classification(model, text)]
    for call in calls:
        with pytest.raises(NotImplementedError):
            call()


def test_top_k_logits(ref):
    logits = torch.randn(1, V, generator=torch.Generator().manual_seed(1))
    assert ref.top_k_logits(logits, 0) is logits
    out = ref.top_k_logits(logits, TOP_K)
    kept = out != -1e10
    assert kept.sum() == TOP_K and torch.equal(out[kept], logits[kept])
    assert logits[kept].min() > logits[~kept].max()
    assert (out[~kept] == torch.tensor(-1e10)).all()


@pytest.mark.parametrize("temperature,horizon", [(None, 1), (0.7, 1), (1.6, 1), (0.9, 2)])
def test_sample(ref, config, temperature, horizon):
    torch.manual_seed(0)
    model, start = TinyModel(), torch.tensor([[4, 8, 15, 16, 23, 42]])
    out = ref.sample(model, start, config, 12, temperature=temperature,
                     temperature_horizon=horizon)
    assert out.shape == (1, 18) and out.dtype == torch.long and torch.equal(out[:, :6], start)
    assert model.calls[0] == (1, 6) and set(model.calls[1:]) == {(1, 1)}  # KV cache used
    for i in range(6, 18):  # every drawn token is among the top k of its step
        assert int(out[0, i]) in full_logits(model, out[0, :i].tolist()).topk(TOP_K).indices


def test_sample_law(ref, config):
    torch.manual_seed(0)
    model, start, temperature, n = TinyModel(), torch.tensor([[7]]), 0.8, 3000
    counts = torch.zeros(V)
    for _ in range(n):
        counts[ref.sample(model, start, config, 1, temperature=temperature)[0, 1]] += 1
    law = torch.softmax(filtered_log_probs(full_logits(model, [7])) / temperature, dim=-1)
    assert (counts / n - law.float()).abs().max() < 0.03


def test_temperature_horizon_1(ref, config):
    model = TinyModel()
    logits, past = model(torch.tensor([[3, 1, 4]]))
    logits = ref.top_k_logits(logits[:, -1, :], TOP_K)
    assert ref.temperature_scale(logits, model, past, config, None, 1) is logits
    out = ref.temperature_scale(logits, model, past, config, 0.5, 1)
    assert torch.equal(out, logits / 0.5)
    assert (out[logits == -1e10] == torch.tensor(-1e10) / 0.5).all()
    with pytest.raises((NotImplementedError, ValueError)):
        ref.temperature_scale(logits, model, past, config, 0.5, 3)


@pytest.mark.parametrize("temperature", [0.5, 0.95, 2.0])
def test_temperature_horizon_2(ref, config, temperature):
    model, prefix = TinyModel(), [3, 1, 4]
    logits, past = model(torch.tensor([prefix]))
    logits = ref.top_k_logits(logits[:, -1, :], TOP_K)
    out = ref.temperature_scale(logits, model, past, config, temperature, 2)
    assert out.shape == (1, V)
    kept = logits[0] != -1e10
    assert (out[0, ~kept] == torch.tensor(-1e10)).all()
    first = filtered_log_probs(full_logits(model, prefix))
    exact = torch.full((V,), -float("inf"), dtype=torch.float64)
    for x1 in kept.nonzero().flatten().tolist():
        joint = first[x1] + filtered_log_probs(full_logits(model, prefix + [x1]))
        exact[x1] = torch.logsumexp(joint / temperature, dim=0)
    got = torch.softmax(out[0].double(), dim=0)
    floor = V * 1e-10 ** (1 / temperature)  # what log(joint + 1e-10) adds per row, at most
    assert torch.allclose(got, torch.softmax(exact, dim=0), rtol=0, atol=1e-6 + floor)


def test_log_likelihood(ref):
    model, tokens = TinyModel(), [5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3]
    got = ref.log_likelihood(model, torch.tensor([tokens]))
    assert type(got) is float
    exact = sum(float(torch.log_softmax(full_logits(model, tokens[:t]), 0)[tokens[t]])
                for t in range(1, len(tokens)))
    assert got == pytest.approx(exact, rel=1e-5)
    assert ref.log_likelihood(model, torch.tensor([[5]])) == 0.0


def test_classification(ref, monkeypatch):
    classifier = sys.modules["submission.classifier"]
    assert -415 < classifier.THRESHOLD < -230
    for value, expected in [(-431.0, True), (-461.0, True), (-228.0, False), (-72.0, False)]:
        monkeypatch.setattr(classifier, "log_likelihood", lambda model, text, v=value: v)
        assert ref.classification(TinyModel(), torch.tensor([[1, 2]])) is expected
