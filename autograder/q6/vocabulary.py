"""GPT-2's vocabulary, named once: its size and its end-of-text token."""

VOCAB_SIZE = 50257                  # GPT-2's BPE vocabulary, kept by every grading model
END_OF_TEXT = "<|endoftext|>"
END_OF_TEXT_ID = 50256              # the last id of the vocabulary
