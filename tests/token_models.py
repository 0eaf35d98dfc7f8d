"""A token model "trained elsewhere": token ids -> ``nn.Embedding`` -> two heads of
``F.scaled_dot_product_attention`` on ``(b, heads, L, d)`` tensors (the layout of HF transformers,
where CPU attention takes the flash kernel, which has no double backward) -> mean over positions
-> linear classifier. Used through
``--model token_models:attention`` (the tests put this folder on ``sys.path``)."""
import numpy as np
import torch.nn.functional as F
from torch import nn

VOCAB, LENGTH, WIDTH, HEADS = 12, 6, 8, 2


class TinyAttention(nn.Module):
    """``(b, L)`` int64 ids in ``[0, vocab)`` -> ``(b, num_classes)`` logits."""

    def __init__(self, num_classes: int = 3, vocab: int = VOCAB, width: int = WIDTH):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.qkv = nn.Linear(width, 3 * width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, ids):
        b, length = ids.shape
        q, k, v = self.qkv(self.embed(ids)).view(b, length, 3, HEADS, -1).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v)          # (b, heads, L, width / heads)
        return self.head(attended.transpose(1, 2).reshape(b, length, -1).mean(dim=1))


def attention(num_classes: int = 3, in_channels: int = LENGTH) -> nn.Module:
    """The factory named on the command line (``in_channels`` is the sequence length: unused)."""
    return TinyAttention(num_classes)


def token_data(n: int = 48, seed: int = 0):
    """int64 ids ``(n, LENGTH)`` and labels: the class is which of tokens 0, 1, 2 occurs most."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, VOCAB, (n, LENGTH)).astype(np.int64)
    counts = np.stack([(ids == t).sum(1) for t in range(3)], 1)
    return ids, counts.argmax(1).astype(np.int64)


class LSTMClassifier(nn.Module):
    """``(b, L)`` int64 ids -> Embedding -> one LSTM layer -> the last hidden state -> logits."""

    def __init__(self, num_classes: int = 3, vocab: int = VOCAB, width: int = WIDTH):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.lstm = nn.LSTM(width, width, batch_first=True)
        self.head = nn.Linear(width, num_classes)

    def forward(self, ids):
        _, (hidden, _) = self.lstm(self.embed(ids))
        return self.head(hidden[-1])


def lstm(num_classes: int = 3, in_channels: int = LENGTH) -> nn.Module:
    """``--model token_models:lstm``."""
    return LSTMClassifier(num_classes)
