"""The three GPT-2 question files as one package, imported by graders as ``submission``."""
from .classifier import classification
from .likelihood import log_likelihood
from .sample import sample, temperature_scale, top_k_logits

__all__ = ["classification", "log_likelihood", "sample", "temperature_scale", "top_k_logits"]
