"""Log-likelihood of a token sequence under GPT-2 (question 6d).

Only the code between the ``### START CODE HERE ###`` and ``### END CODE HERE ###`` markers is
written by students; everything else is provided.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import trange


def log_likelihood(model, text):
    """Return sum_{t=1}^{T-1} log p(x_t | x_<t) in nats as a Python float.

    ``text`` is a (1, T) LongTensor; the first token has no prediction and is left out.
    """
    with torch.no_grad():
        ### START CODE HERE ###
        logits, _ = model(text)  # (1, T, vocab)
        log_probs = F.log_softmax(logits[:, :-1, :], dim=-1)  # predictions for x_1 .. x_{T-1}
        token_log_probs = log_probs.gather(2, text[:, 1:].unsqueeze(-1))
        total = token_log_probs.sum()
        ### END CODE HERE ###
    return float(total)
