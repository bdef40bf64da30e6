"""Sampling from GPT-2 (questions 6c, 6f, 6h): top-k filter, temperature scaling, sampling loop.

Only the code between the ``### START CODE HERE ###`` and ``### END CODE HERE ###`` markers is
written by students; everything else is provided. All functions assume a batch of one row.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import trange


def top_k_logits(logits, k):
    """Keep the k largest logits of the row and set every other logit to exactly -1e10.

    ``logits`` has shape (1, vocab). ``k == 0`` returns the logits unchanged. The threshold
    ``values[:, -1]`` is compared without unsqueezing, so this is only right for batch size 1.
    """
    if k == 0:
        return logits
    values, _ = torch.topk(logits, k)
    min_values = values[:, -1]
    return torch.where(logits < min_values, torch.full_like(logits, -1e10), logits)


def temperature_scale(logits, model, new_past, config, temperature, temperature_horizon):
    """Temperature-scale the (1, vocab) next-token logits, already top-k filtered.

    Horizon 1 scales the logits by the temperature. Horizon 2 returns, for each surviving
    first token x1, log sum_x2 p(x1, x2) ** (1 / T), where both conditionals are top-k
    filtered; filtered-out tokens stay at -1e10. ``temperature is None`` means no scaling.
    """
    if temperature is None:
        return logits
    if temperature_horizon == 1:
        ### START CODE HERE ###
        scaled_logits = logits / temperature
        ### END CODE HERE ###
        return scaled_logits
    if temperature_horizon == 2:
        scaled_logits = torch.full_like(logits, -1e10)
        keep = (logits[0] > -1e10).tolist()  # same test as logits[0, t] <= -1e10, done once
        first_tokens = []
        joint_probs = []
        for t in range(config.vocab_size):
            if not keep[t]:
                continue
            ### START CODE HERE ###
            first_probs = F.softmax(logits, dim=-1)  # (1, vocab)
            next_logits, _ = model(torch.tensor([[t]]), past=new_past)
            next_logits = top_k_logits(next_logits[:, -1, :], k=config.top_k)
            joint_prob_t = first_probs[:, t:t + 1] * F.softmax(next_logits, dim=-1)  # (1, vocab)
            ### END CODE HERE ###
            first_tokens.append(t)
            joint_probs.append(joint_prob_t)
        log_joint = torch.log(torch.cat(joint_probs, dim=0) + 1e-10)  # (number kept, vocab)
        ### START CODE HERE ###
        first_logits = torch.logsumexp(log_joint / temperature, dim=1)  # (number kept,)
        ### END CODE HERE ###
        scaled_logits[0, first_tokens] = first_logits
        return scaled_logits
    raise NotImplementedError(
        f"temperature_horizon={temperature_horizon!r} is not supported: use 1 or 2")


def sample(model, start_text, config, length, temperature=None, temperature_horizon=1):
    """Draw ``length`` tokens after ``start_text`` (a (1, T0) LongTensor), using the KV cache.

    Returns a (1, T0 + length) LongTensor that starts with ``start_text``.
    """
    current_text = start_text
    past = None
    output = [start_text]
    with torch.no_grad():
        for _ in trange(length):
            logits, new_past = model(current_text, past=past)
            logits = logits[:, -1, :]
            logits = top_k_logits(logits, k=config.top_k)
            logits = temperature_scale(logits, model, new_past, config,
                                       temperature, temperature_horizon)
            ### START CODE HERE ###
            probs = F.softmax(logits, dim=-1)
            next_token = torch.multinomial(probs, num_samples=1)  # (1, 1)
            output.append(next_token)
            current_text = next_token
            ### END CODE HERE ###
            past = new_past
    return torch.cat(output, dim=1)
