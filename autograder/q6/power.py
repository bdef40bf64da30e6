"""The documented error rates of the sampler tests of question 6, computed from their designs.

False failures: a correct sampler's PIT values are i.i.d. Uniform(0, 1), so the exact KS test
at level alpha fails it with probability at most alpha (plus float rounding of the laws, below
1e-9 here).  The support check and the seeded match never fail a correct sampler.

Power: on a ``profile`` model every context has the same sorted law, so a sampler that is
wrong the same way in every context gives i.i.d. PIT values, and ``autograder.stats.dkw_power``
bounds its pass probability.  A temperature off by a factor f turns the reference law p into
p^(1/f) (renormalised on the survivors), whose delta is computed exactly; a shift of total
variation d between the head and the tail of the law (monotone in rank) has delta = d.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autograder.q6.designed import profile_probs
from autograder.stats import dkw_power, pit_delta, tempered


def reference_law(spec: dict, temperature: float | None) -> np.ndarray:
    """The sorted top-k law a correct sampler draws from on a profile model."""
    p = profile_probs(int(spec["top_k"]), float(spec["head"]), float(spec["spread"]), float(spec["beyond"]))
    p = p[: int(spec["top_k"])]
    # The logits are design_temperature * log p; the sampler divides them by its temperature.
    p = p ** (float(spec.get("design_temperature", 1.0)) / (1.0 if temperature is None else temperature))
    return p / p.sum()


@dataclass(frozen=True)
class PowerReport:
    draws: int
    alpha: float
    delta_hot: float          # temperature 10% too high
    delta_cold: float         # temperature 10% too low
    power_hot: float          # DKW-proven lower bounds
    power_cold: float
    power_tv: float           # a head-tail shift of total variation 0.1

    def line(self) -> str:
        return (f"n={self.draws} alpha={self.alpha:.1e}; proven power: T x1.1 {self.power_hot:.3f} "
                f"(delta {self.delta_hot:.3f}), T x0.9 {self.power_cold:.3f} (delta {self.delta_cold:.3f}), "
                f"TV 0.1 head-tail {self.power_tv:.3f}")


def sampler_power(spec: dict, temperature: float | None, draws: int, alpha: float) -> PowerReport | None:
    """Power of a sampler test on a profile model; None for models without a fixed profile."""
    if spec.get("kind") != "profile":
        return None
    p = reference_law(spec, temperature)
    hot, cold = pit_delta(p, tempered(p, 1.1)), pit_delta(p, tempered(p, 0.9))
    return PowerReport(draws, alpha, hot, cold, dkw_power(hot, draws, alpha), dkw_power(cold, draws, alpha),
                       dkw_power(0.1, draws, alpha))


def design_power(assignment, spec) -> PowerReport | None:
    """The design power of a statistical graded test whose sampler runs on a profile model, else None.

    ``spec`` is the test's ``TestSpec``; its ``params.sampler`` gives the model and the draws
    (runs x length), as ``Q6TestCase.check_sampler_law`` pools them.
    """
    sampler = spec.params.get("sampler")
    if not spec.statistical or not isinstance(sampler, dict):
        return None
    draws = int(sampler["runs"]) * int(sampler["length"])
    return sampler_power(assignment.model(sampler["model"]), sampler.get("temperature"), draws,
                         assignment.alpha_per_test)
