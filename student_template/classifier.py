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
THRESHOLD = None  # Question 6e: choose a log-likelihood threshold
### END CODE HERE ###


def classification(model, text):
    """Return True if ``text`` (a (1, T) LongTensor) is a random letter string, else False."""
    ### START CODE HERE ###
    raise NotImplementedError(
        "Question 6e: return True when log_likelihood(model, text) is below a "
        "threshold you read off the histograms of question 6d.")
    ### END CODE HERE ###
