"""Text side of TIRG: a vocabulary built from training texts and an LSTM encoder.

The vocabulary is plain data (a list of words), saved inside checkpoints, so a model loads without the
data set it was trained on (the reference code could not).
"""
from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence

import torch
from torch import nn

UNK = "<UNK>"
_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")


def tokenize(text: str) -> list[str]:
    """Lowercase, strip punctuation, split on whitespace."""
    return _PUNCTUATION.sub(" ", text.lower()).split()


class Vocabulary:
    """word <-> id, with `<UNK>` = 0 for words never seen in training."""

    def __init__(self, words: Sequence[str] = ()):
        self.words = [UNK] + [w for w in words if w != UNK]
        self.index = {word: i for i, word in enumerate(self.words)}

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 1) -> Vocabulary:
        counts = Counter(token for text in texts for token in tokenize(text))
        return cls(sorted(word for word, count in counts.items() if count >= min_count))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> list[int]:
        return [self.index.get(token, 0) for token in tokenize(text)] or [0]

    def to_list(self) -> list[str]:
        return list(self.words)

    @classmethod
    def from_list(cls, words: Sequence[str]) -> Vocabulary:
        if not words or words[0] != UNK:
            raise ValueError("a saved vocabulary starts with <UNK>")
        return cls(words[1:])


class TextEncoder(nn.Module):
    """Embedding -> one-layer LSTM -> hidden state at the last real token -> dropout -> linear.

    The LSTM always runs in fp32, also under bf16 autocast: oneDNN has no bf16 LSTM on CPUs without
    AVX-512 BF16 (it fails to build the primitive), and the LSTM is a small share of TIRG's compute.
    """

    def __init__(self, vocab_size: int, word_dim: int = 512, lstm_dim: int = 512, out_dim: int = 512):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, word_dim)
        self.lstm = nn.LSTM(word_dim, lstm_dim, batch_first=True)
        self.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(lstm_dim, out_dim))

    def forward(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        embedded = self.embedding(token_ids)
        with torch.autocast(embedded.device.type, enabled=False):
            outputs, _ = self.lstm(embedded.float())
        last = outputs[torch.arange(outputs.shape[0], device=outputs.device), lengths - 1]
        return self.head(last)


def pad_batch(sequences: Sequence[Sequence[int]], device: torch.device | str = "cpu"):
    """(ids [batch, max_len] zero-padded, lengths [batch])."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    ids = torch.zeros(len(sequences), int(lengths.max()), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
    return ids.to(device), lengths.to(device)
