"""Drivers for the GPT-2 question: harness code that runs inside the worker and calls student functions.

Each driver takes the imported student module, the worker's ``WorkerContext`` and plain-data
arguments, seeds every random generator before each student call, calls the student's function
through ``call_student`` (checked against the course's signature in ``autograder.q6.course``;
whatever goes wrong in the call is the student's), and turns what the student returned into
plain data (or raises ``InvalidReturn`` naming what is wrong).  The harness checks every value
again; nothing here decides a score.
"""
from __future__ import annotations

import math
import os
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from autograder.sandbox.calls import Expected, call_student
from autograder.errors import InvalidReturn
from autograder.sandbox.worker import STORE_VAR
from autograder.q6.course import CLASSIFICATION, LOG_LIKELIHOOD, SAMPLE, TEMPERATURE_SCALE
from autograder.q6.course import OLDER_LAYOUTS, PACKAGE_EXPORTS  # noqa: F401 - read by the worker
from autograder.q6.course import STUDENT_FILES  # noqa: F401 - read by the harness (Assignment.student_files)
from autograder.q6.course import TEST_ID, TEST_ID_FORM, is_public, number_of  # noqa: F401 - read by the harness (load_assignment)
from autograder.q6.grading_models import ModelCache
from autograder.q6.grading_models import CONTAINER_NEEDS, container_mode  # noqa: F401 - read by the harness (autograder.container)

RUNTIME_DATA = ("data/natural_train.txt",)  # what workers read besides modules (relative to this package)


class WorkerContext:
    def __init__(self) -> None:
        store = os.environ.get(STORE_VAR)
        self.models = ModelCache(Path(store) if store else None)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """The course's ``top_k_logits`` semantics, row-wise: below the k-th largest becomes -1e10."""
    if k == 0:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return torch.where(logits < kth, torch.full_like(logits, -1e10), logits)


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {type(value).__name__} of shape {tuple(value.shape)} and dtype {value.dtype}"
    module, name = type(value).__module__, type(value).__qualname__
    shown = name if module == "builtins" else f"{module}.{name}"
    return f"{'an' if shown[:1] in 'aeiou' else 'a'} {shown}"


def _values(value: torch.Tensor, what: str, read):
    """``read`` of the tensor's values on the CPU; a tensor that holds none the harness can read
    (sparse, on the meta device, ...) is a wrong return, named with torch's reason."""
    try:
        return read(value.detach().cpu())
    except (RuntimeError, TypeError, NotImplementedError, ValueError) as exc:
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise InvalidReturn(f"{what} returned {_describe(value)} whose values cannot be read ({why}); "
                            "it must return a dense torch.Tensor on the CPU") from None


def as_array(value, what: str, integer: bool) -> np.ndarray:
    """A plain tensor or ndarray of the right kind, as a contiguous numpy array."""
    if type(value) is torch.Tensor:
        arr = _values(value, what, lambda t: t.to(torch.float64).numpy() if t.is_floating_point() else t.numpy())
    elif type(value) is np.ndarray:
        arr = value
    else:
        raise InvalidReturn(f"{what} returned {_describe(value)}; it must return a torch.Tensor")
    if integer and arr.dtype.kind not in "iu":
        raise InvalidReturn(f"{what} returned values of dtype {arr.dtype}; token ids must be integers (torch.long)")
    if not integer and arr.dtype.kind not in "fiu":
        raise InvalidReturn(f"{what} returned values of dtype {arr.dtype}; logits must be floating point")
    return np.ascontiguousarray(arr, dtype=np.int64 if integer else np.float64)


def as_float(value, what: str) -> float:
    """A finite real number: a float, an int, a numpy float or a one-element floating tensor.

    A tensor still attached to the autograd graph is accepted (its value is read detached);
    NaN and infinities are refused here, with a message the student can act on.
    """
    if type(value) in (float, int) or isinstance(value, np.floating) and type(value).__module__ == "numpy":
        number = float(value)
    elif type(value) is torch.Tensor and value.numel() == 1 and value.is_floating_point():
        number = float(_values(value, what, lambda t: t.item()))
    else:
        raise InvalidReturn(f"{what} returned {_describe(value)}; it must return a Python float")
    if not math.isfinite(number):
        shown = "NaN" if math.isnan(number) else repr(number)
        underflow = (": a probability underflowed to 0 (a product of probabilities, or the log of a float32 softmax, "
                     "does so on long texts); sum log_softmax terms instead") if number == -math.inf else ""
        raise InvalidReturn(f"{what} returned {shown}; it must return a finite real number "
                            f"(the sum of log-probabilities in nats){underflow}")
    return number


def as_bool(value, what: str) -> bool:
    if type(value) is bool or type(value) is np.bool_:
        return bool(value)
    if type(value) is torch.Tensor and value.numel() == 1 and value.dtype == torch.bool:
        return bool(_values(value, what, lambda t: t.item()))
    raise InvalidReturn(f"{what} returned {_describe(value)}; it must return True or False")


def _config(args: dict) -> SimpleNamespace:
    return SimpleNamespace(**args["config"])


def drive_sample(student, ctx: WorkerContext, args: dict) -> dict:
    model = ctx.models.get(args["model"])
    config = _config(args)
    tokens = []
    for prompt, seed in zip(args["prompts"], args["seeds"]):
        seed_everything(seed)
        out = call_student(student, SAMPLE, model, torch.from_numpy(prompt), config, args["length"],
                           temperature=args["temperature"], temperature_horizon=args["horizon"])
        tokens.append(as_array(out, "sample()", integer=True))
    return {"tokens": tokens}


def drive_temperature_scale(student, ctx: WorkerContext, args: dict) -> dict:
    model = ctx.models.get(args["model"])
    config = _config(args)
    outputs = []
    for prompt in args["prompts"]:
        with torch.no_grad():
            logits, new_past = model(torch.from_numpy(prompt))
            filtered = top_k_filter(logits[:, -1, :], config.top_k)  # (1, V)
            seed_everything(args["seed"])
            out = call_student(student, TEMPERATURE_SCALE, filtered, model, new_past, config,
                               args["temperature"], args["horizon"])
        outputs.append(as_array(out, "temperature_scale()", integer=False))
    return {"logits": outputs}


def _per_text(student, expected: Expected, convert, ctx: WorkerContext, args: dict) -> list:
    """Call a student function ``(model, text)`` once per text, seeding before each call."""
    model = ctx.models.get(args["model"])
    out = []
    for text in args["texts"]:
        seed_everything(args["seed"])
        out.append(convert(call_student(student, expected, model, torch.from_numpy(text))))
    return out


def drive_log_likelihood(student, ctx: WorkerContext, args: dict) -> dict:
    return {"values": _per_text(student, LOG_LIKELIHOOD, lambda v: as_float(v, "log_likelihood()"), ctx, args)}


def drive_classification(student, ctx: WorkerContext, args: dict) -> dict:
    return {"labels": _per_text(student, CLASSIFICATION, lambda v: as_bool(v, "classification()"), ctx, args)}


DRIVERS = {
    "sample": drive_sample,
    "temperature_scale": drive_temperature_scale,
    "log_likelihood": drive_log_likelihood,
    "classification": drive_classification,
}
