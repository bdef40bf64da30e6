"""The named mistakes of question 6: every diagnosis key a check can report, in one table.

A key is a short stable string, ``area:mistake``, written to a test's ``extra_data.diagnosis``
(staff only) and counted across a class.  A key is reported only when the check matched the
mistake (``autograder.q6.mistakes`` says how each is matched); a failure without a match has no key.

Log-likelihood keys are composed: ``likelihood:`` then one or two atoms joined by ``+``, a base
(which quantity was summed) first and the transforms after it in the order of
``LIKELIHOOD_TRANSFORMS``, e.g. ``likelihood:tail-text+half`` is half the log-likelihood of
``text[:, 1:]``.  ``likelihood_key`` builds them; ``describe`` turns any key into words.
"""
from __future__ import annotations

KEYS: dict[str, str] = {
    "shape:wrong-type": "sample() did not return a LongTensor of token ids",
    "shape:wrong-rank": "the output has the wrong number of dimensions (it must be (1, T0 + length))",
    "shape:wrong-length": "the output has the wrong number of tokens",
    "shape:prompt-changed": "the output does not start with start_text unchanged",
    "shape:token-range": "a token id outside the vocabulary",
    "sampler:outside-top-k": "a drawn token is outside the top-k of its context's law",
    "sampler:reseeded": "the draws do not depend on the random seed (a seed is reset inside sample)",
    "sampler:greedy": "greedy decoding, every draw is the most likely token",
    "sampler:temperature-ignored": "the draws follow the law at temperature 1: the temperature is ignored",
    "sampler:temperature-squared": "the draws follow the law at temperature T^2: the logits are divided by T twice",
    "sampler:temperature-inverted": "the draws follow the law at temperature 1/T: the logits are multiplied by T",
    "sampler:horizon2-as-horizon1": "the horizon-2 draws follow the horizon-1 law at T (temperature after the marginal)",
    "temperature:mask-lost": "tokens removed by top-k get probability",
    "temperature:ignored": "the logits are returned unscaled",
    "temperature:inverted": "the logits are multiplied by T (or the probabilities raised to the power T)",
    "temperature:squared": "the logits are divided by T twice",
    "temperature:probabilities": "probabilities softmax(logits / T) are returned instead of logits",
    "horizon2:scaled-after-marginal": "the second token is marginalized before dividing by T",
    "horizon2:no-top-k-second": "the second token's logits are not top-k filtered",
    "horizon2:missing-first-prob": "the joint row lacks the factor p(t): it is only p(. | t)",
    "horizon2:context-ignored": "the second step ignores the context (called without past)",
    "classifier:inverted": "the labels follow an inverted comparison (random when the log-likelihood is above the threshold)",
    "classifier:all-random": "every snippet is called random: the threshold is above every natural snippet",
    "classifier:all-natural": "every snippet is called natural: the threshold is below every random snippet",
    "classifier:threshold-off": "the labels follow a threshold outside the gap between the two groups",
    "classifier:not-a-threshold": "the labels follow no threshold on the log-likelihood",
}

# Log-likelihood atoms: the base quantity, then transforms of it (applied in this order).
LIKELIHOOD_BASES: dict[str, str] = {
    "unshifted": "the log-probabilities of each token under its own position's logits (no shift), summed",
    "last-dropped": "the log-likelihood without the last token's term",
    "first-token-eot": "the log-likelihood with the first token scored too, after a prepended <|endoftext|>",
    "first-token-uniform": "the log-likelihood with the first token counted at a uniform prior over the vocabulary",
    "raw-logits": "the raw logits of the observed tokens, summed (no log-softmax)",
    "tail-text": "the log-likelihood of text[:, 1:] (the first token dropped before the model)",
    "positions-shifted": "the log-likelihood with position_ids 1..T instead of the model's own 0..T-1",
    "token-types-zero": "the log-likelihood with token_type_ids given (zeros add token 0's embedding everywhere)",
}
LIKELIHOOD_TRANSFORMS: dict[str, str] = {
    "sign": "with the sign flipped",
    "mean-not-sum": "averaged over the scored tokens instead of summed",
    "mean-over-length": "divided by the text's length T",
    "bits": "in bits (log base 2) instead of nats",
    "half": "halved",
    "double": "doubled",
}


def likelihood_key(base: str | None, transforms: tuple[str, ...]) -> str:
    """The key of a log-likelihood mistake: its base (None: the right sum) and its transforms."""
    atoms = ([base] if base else []) + [t for t in LIKELIHOOD_TRANSFORMS if t in transforms]
    return "likelihood:" + "+".join(atoms)


def describe(key: str) -> str:
    """A key in words, for the headline of a test's feedback."""
    if key in KEYS:
        return KEYS[key]
    area, _, rest = key.partition(":")
    if area != "likelihood":
        raise KeyError(f"unknown diagnosis key {key!r}; the known ones are in autograder/q6/diagnoses.py")
    atoms = rest.split("+")
    base = LIKELIHOOD_BASES[atoms[0]] if atoms[0] in LIKELIHOOD_BASES else "the log-likelihood"
    words = [LIKELIHOOD_TRANSFORMS[a] for a in atoms if a in LIKELIHOOD_TRANSFORMS]
    return base + "".join((", " if i or atoms[0] in LIKELIHOOD_BASES else " ") + w for i, w in enumerate(words))


def is_known(key: str) -> bool:
    """Whether ``key`` is one of this table's (composed log-likelihood keys included)."""
    if key in KEYS:
        return True
    area, _, rest = key.partition(":")
    atoms = rest.split("+")
    bases = [a for a in atoms if a in LIKELIHOOD_BASES]
    return (area == "likelihood" and bool(rest) and len(bases) <= 1 and atoms[0] in (bases or atoms[:1])
            and all(a in LIKELIHOOD_BASES or a in LIKELIHOOD_TRANSFORMS for a in atoms))
