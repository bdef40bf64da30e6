"""Grading models named by plain-data specs, built identically in the harness and the worker.

A spec is a small dict that crosses the worker boundary as JSON:

- ``{"kind": "synthetic", "seed": 1, "n_layer": 2, "n_embd": 64, "n_head": 4, "logit_scale": 3.0}``
- ``{"kind": "checkpoint", "path": "...", "sha256": "...", "size": N, "url": "..."}``: the course's
  GPT-2 small file (``path`` relative to the harness root or absolute; ``size`` and ``url`` optional,
  ``url`` is where ``setup.sh`` fetches it from).  Optional shape fields (``n_layer``, ``n_embd``,
  ``n_head``, ``n_positions``, ``n_ctx``) default to GPT-2 small's, so a small synthetic
  checkpoint in the same format can stand in for tests.
- ``{"kind": "profile", "salt": 1, "top_k": 40, "head": 0.5, "spread": 1.0, "beyond": 0.3,
  "design_temperature": 1.0}``: a designed model whose laws make sampling mistakes visible
  (``autograder.q6.designed``)
- ``{"kind": "text"}``: the designed n-gram language model used for classification
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from autograder.errors import CheckpointError, ConfigError
from autograder.paths import HARNESS_ROOT  # relative checkpoint paths start there; workers get absolute ones
from autograder.sandbox.heap import return_freed_memory
from autograder.q6.model import DESIGNED_SHAPE, GPT2, Exact, GPT2Config, load_state_dict_hf, to_hf_state_dict
from autograder.q6.synthetic import synthetic_gpt2


_SYNTHETIC_KEYS = {"kind", "seed", "n_layer", "n_embd", "n_head", "logit_scale"}
CHECKPOINT_SHAPE_KEYS = ("n_layer", "n_embd", "n_head", "n_positions", "n_ctx")
_CHECKPOINT_KEYS = {"kind", "path", "sha256", "size", "url", *CHECKPOINT_SHAPE_KEYS}


# What grading was measured to need in each mode (bench/results/container.md, in real cgroups),
# read by the harness (autograder.container.needs): (peak MiB, CPUs, how it was measured, when).
# Embedded, the default config: the highest of the reference and the correct corpus entries
# (640 MiB of anonymous memory, weights of a few MiB).  Production, `gpt2` at GPT-2 small's real
# size (12 x 768) standing in for the checkpoint (785 MiB anonymous plus 475 MiB of weights; at
# half a CPU test 6h-1's calls come near their 60 s limit).
CONTAINER_NEEDS = {
    "embedded": (650, 0.5, "measured with the reference and the correct corpus entries",
                 "no checkpoint model and no model of GPT-2 small's size (the shipped config)"),
    "production": (1260, 1.0, "measured with GPT-2 small's size; the checkpoint's weights are as large",
                   "a `kind: checkpoint` model, or a synthetic one of GPT-2 small's size"),
}
GPT2_SMALL_SHAPE = {key: getattr(GPT2Config(), key) for key in ("n_layer", "n_embd", "n_head")}  # the defaults


def container_mode(models: dict) -> str:
    """"production" when a grading model is a checkpoint or has GPT-2 small's size, else "embedded"."""
    for spec in models.values():
        if not isinstance(spec, dict):
            continue
        if spec.get("kind") == "checkpoint":
            return "production"
        if spec.get("kind") == "synthetic" and int(spec.get("n_layer", 0)) * int(spec.get("n_embd", 0)) >= (
                GPT2_SMALL_SHAPE["n_layer"] * GPT2_SMALL_SHAPE["n_embd"]):
            return "production"
    return "embedded"

def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(model: GPT2, path: Path) -> str:
    """Write ``model`` in the course checkpoint's key layout; return the file's sha256."""
    torch.save(to_hf_state_dict(model), path)
    return sha256_of(path)


def checkpoint_path(spec: dict) -> Path:
    """Where a checkpoint spec's file is loaded from: ``path``, relative to the harness root."""
    path = Path(str(spec.get("path", "")))
    return path if path.is_absolute() else HARNESS_ROOT / path


def load_checkpoint(path: Path, sha256: str | None = None, cfg: GPT2Config = GPT2Config(),
                    size: int | None = None) -> GPT2:
    """Load a Hugging Face GPT-2 state dict file, refusing it when its size or sha256 differs."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; run setup.sh (it fetches or copies the "
                              "checkpoint) or fix the path in the assignment config")
    if size is not None and path.stat().st_size != size:
        raise CheckpointError(f"checkpoint {path} has {path.stat().st_size} bytes, the assignment config "
                              f"expects {size}; fetch the right file again with setup.sh")
    if sha256 is not None:
        got = sha256_of(path)
        if got != sha256:
            raise CheckpointError(f"checkpoint {path} has sha256 {got}, the assignment config expects {sha256}")
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return load_state_dict_hf(GPT2.unfilled(cfg), state).eval()


def model_config(spec: dict) -> GPT2Config:
    """The course-style config a student function receives alongside this model."""
    if spec.get("kind") == "synthetic":
        return GPT2Config(seed=int(spec["seed"]), n_layer=int(spec["n_layer"]),
                          n_embd=int(spec["n_embd"]), n_head=int(spec["n_head"]))
    if spec.get("kind") == "profile":
        return GPT2Config(top_k=int(spec["top_k"]), **DESIGNED_SHAPE)
    if spec.get("kind") == "text":
        return GPT2Config(**DESIGNED_SHAPE)
    if spec.get("kind") == "checkpoint":
        return GPT2Config(**{k: int(spec[k]) for k in CHECKPOINT_SHAPE_KEYS if k in spec})
    return GPT2Config()


def build_model(spec: dict) -> torch.nn.Module:
    kind = spec.get("kind")
    if kind == "synthetic":
        unknown = set(spec) - _SYNTHETIC_KEYS
        if unknown:
            raise ConfigError(f"synthetic model spec has unknown keys {sorted(unknown)}")
        return synthetic_gpt2(model_config(spec), int(spec["seed"]), float(spec.get("logit_scale", 3.0)))
    if kind == "checkpoint":
        unknown = set(spec) - _CHECKPOINT_KEYS
        if unknown:
            raise ConfigError(f"checkpoint model spec has unknown keys {sorted(unknown)}; known: {sorted(_CHECKPOINT_KEYS)}")
        return load_checkpoint(checkpoint_path(spec), spec.get("sha256"), model_config(spec), spec.get("size"))
    if kind == "profile":
        from autograder.q6.designed import ProfileLaw, profile_probs

        probs = profile_probs(int(spec["top_k"]), float(spec["head"]), float(spec["spread"]), float(spec["beyond"]))
        return GPT2.designed(ProfileLaw(int(spec["salt"]), probs, float(spec.get("design_temperature", 1.0))),
                             int(spec["top_k"]))
    if kind == "text":
        from autograder.q6.textmodel import build_text_model

        return build_text_model()
    raise ConfigError(f"unknown model kind {kind!r} in spec {spec!r}")


class ModelCache:
    """Builds each spec once per process; float64 views on demand for exact laws.

    With a ``store`` folder, GPT-2 weights live in one file per spec there, memory-mapped by
    every process that uses them, so the harness and its workers share one copy in RAM.  Only
    the harness (``writer``) fills the store; a worker maps what it finds and builds the rest.
    """

    def __init__(self, store: Path | None = None, writer: bool = False) -> None:
        self._models: dict[tuple[str, str], torch.nn.Module] = {}
        self.store, self.writer = store, writer

    def get(self, spec: dict, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
        key = (json.dumps(spec, sort_keys=True), str(dtype))
        if dtype == torch.float32 and key in self._models and _altered(self._models[key]):
            del self._models[key]  # student code cast it (model.double()) or set it training: a fresh one
        if key not in self._models:
            if dtype == torch.float32:
                self._models[key] = self._build(spec)
            else:
                self._models[key] = _copy_as(self.get(spec), dtype)
        return self._models[key]

    def share(self, specs) -> None:
        """Write the store's file of every GPT-2 spec now, before any worker needs it."""
        for spec in specs:
            if spec.get("kind") in ("synthetic", "checkpoint"):
                self.get(spec)

    def _stored(self, spec: dict) -> Path | None:
        if self.store is None or spec.get("kind") not in ("synthetic", "checkpoint"):
            return None
        return self.store / (hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32] + ".pt")

    def _build(self, spec: dict) -> torch.nn.Module:
        path = self._stored(spec)
        if path is not None and path.is_file():
            return _mapped(path, model_config(spec))
        model = build_model(spec)
        if path is None or not self.writer:
            return model
        tmp = path.with_suffix(".tmp")
        torch.save(model.state_dict(), tmp)
        tmp.chmod(0o644)   # workers run as other users and only read it
        os.replace(tmp, path)
        del model
        return_freed_memory()   # the built copy's layers sat on the heap: give them back to the system
        return _mapped(path, model_config(spec))


def _mapped(path: Path, cfg: GPT2Config) -> GPT2:
    """A GPT-2 whose weights are the stored file's pages (copy-on-write: a write stays private)."""
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    with torch.device("meta"):
        model = GPT2(cfg)
    model.load_state_dict(state, assign=True)
    return model.restore_buffers().eval()


def _altered(model: torch.nn.Module) -> bool:
    return isinstance(model, GPT2) and (model.training or model.transformer.wte.weight.dtype != torch.float32)


def _copy_as(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    if dtype == torch.float64 and isinstance(model, GPT2):
        return Exact(model).eval()  # float64 arithmetic on the shared float32 weights, any law
    raise ValueError(f"no {dtype} view of a {type(model).__name__}")
