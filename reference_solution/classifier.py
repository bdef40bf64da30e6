"""Tell random letter strings from natural text by their GPT-2 log-likelihood (question 6e).

Only the code between the ``### START CODE HERE ###`` and ``### END CODE HERE ###`` markers is
written by students; everything else is provided.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import trange

from submission.likelihood import log_likelihood

### START CODE HERE ###
# With GPT-2 small on the course's 100-character snippets, log-likelihoods are: random letters
# mean -431 (range -461 to -417), Shakespeare -152 (-195 to -115), NeurIPS -123 (-228 to -72).
# -300 sits in the middle of the gap (-415, -230), more than 70 nats from either side. The
# grader's synthetic classification model is calibrated to the same ranges (measured by
# bench/textmodel_calibration.py).
THRESHOLD = -300.0
### END CODE HERE ###


def classification(model, text):
    """Return True if ``text`` (a (1, T) LongTensor) is a random letter string, else False."""
    ### START CODE HERE ###
    return bool(log_likelihood(model, text) < THRESHOLD)
    ### END CODE HERE ###
