"""Calibration figures of the question-6e text model (autograder/q6/textmodel.py).

Prints min / mean / max log-likelihood (nats, tokens 1..T-1, float64) of random-letter and
natural snippets drawn with ``labelled_snippets`` over several seeds, their token counts, and
the build and forward times on one CPU thread.  Real GPT-2 small gives random -461..-417
(mean -431) and natural -228..-72; a grading threshold must be able to sit anywhere in
about -415..-230.  Benchmark script: it prints figures and asserts nothing.

    .venv/bin/python bench/textmodel_calibration.py [--seeds 6] [--per-class 25] [knob=value ...]
    .venv/bin/python bench/textmodel_calibration.py --smoke   # one seed, two snippets a class: a quick check
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autograder.q6.snippets import labelled_snippets  # noqa: E402
from autograder.q6.textmodel import build_text_model  # noqa: E402
from autograder.q6.tokenizer import GPT2Tokenizer  # noqa: E402
from autograder.q6.vocabulary import VOCAB_SIZE  # noqa: E402


def log_likelihood(model, ids: torch.Tensor) -> float:
    """Sum over t = 1..T-1 of log p(x_t | x_<t), in float64."""
    with torch.no_grad():
        logits, _ = model(ids)
    logp = torch.log_softmax(logits[0, :-1].double(), dim=-1)   # (T-1, V)
    return logp.gather(1, ids[0, 1:, None]).sum().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6, help="seeds 0..N-1")
    parser.add_argument("--per-class", type=int, default=25, help="snippets of each class per seed")
    parser.add_argument("--smoke", action="store_true", help="one seed, two snippets of each class: a quick check")
    parser.add_argument("knobs", nargs="*", help="build_text_model overrides, e.g. noise_letter_mass=0.7")
    args = parser.parse_args()
    if args.smoke:
        args.seeds, args.per_class = 1, 2
    knobs = {k: float(v) for k, v in (item.split("=", 1) for item in args.knobs)}

    torch.set_num_threads(1)
    tokenizer = GPT2Tokenizer()
    tokenizer.encode("warm up")                  # load the BPE tables outside the timing
    start = time.perf_counter()
    model = build_text_model(tokenizer=tokenizer, **knobs)
    build_s = time.perf_counter() - start

    scores: dict[bool, list[float]] = {True: [], False: []}
    lengths: dict[bool, list[int]] = {True: [], False: []}
    for seed in range(args.seeds):
        for text, is_random in labelled_snippets(seed, args.per_class, args.per_class):
            ids = tokenizer.encode(text)
            scores[is_random].append(log_likelihood(model, ids))
            lengths[is_random].append(ids.size(1))

    ids = torch.arange(100).mul(397).remainder(VOCAB_SIZE).unsqueeze(0)   # (1, 100), any ids
    model(ids)
    times = []
    for _ in range(20):
        start = time.perf_counter()
        model(ids)
        times.append(time.perf_counter() - start)

    print(f"knobs: {knobs or 'defaults'}")
    for is_random, name in ((True, "random"), (False, "natural")):
        s, n = np.array(scores[is_random]), np.array(lengths[is_random])
        print(f"{name:8s} n={s.size:4d}  log-lik min {s.min():8.2f}  mean {s.mean():8.2f}  max {s.max():8.2f}"
              f"  std {s.std():6.2f}  | tokens {n.min()}..{n.max()} (mean {n.mean():.1f})")
    print(f"separation: random max {max(scores[True]):.2f} (< -415 wanted), "
          f"natural min {min(scores[False]):.2f} (> -230 wanted)")
    print(f"build {build_s * 1000:.0f} ms (tokenizer preloaded); "
          f"100-token forward median {np.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms (1 thread)")


if __name__ == "__main__":
    main()
