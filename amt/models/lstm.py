"""The report's recurrent models: the spectrum read as a sequence of ``bins`` steps × 1 feature.

The input is the first 128 FFT bins (0-1.4 kHz; the data module builds 128-bin spectra for these
models). One LSTM layer reads them from low to high frequency; PyTorch's own ``dropout`` argument
only acts between stacked layers, so each model applies :class:`torch.nn.Dropout` to the LSTM's
outputs itself.
"""

from __future__ import annotations

import torch
from torch import nn

from amt.errors import AmtError
from amt.models.base import TranscriptionModel, require_dropout, require_positive


class LSTMClassifier(TranscriptionModel):
    """LSTM over the bins → dropout → Linear(hidden → 81) on the last step's state (report: val AP 0.19)."""

    def __init__(self, bins: int = 128, hidden: int = 1024, dropout: float = 0.8):
        super().__init__(bins)
        require_positive("hidden", hidden)
        require_dropout("dropout", dropout)
        self.lstm = nn.LSTM(1, hidden, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, self.labels.notes)

    def forward(self, spectra: torch.Tensor) -> torch.Tensor:
        states, _ = self.lstm(spectra.unsqueeze(-1))
        return self.head(self.dropout(states[:, -1]))


class LSTMAttention(TranscriptionModel):
    """LSTM plus dot-product attention of every state against the last one (report: val AP 0.52).

    Scores ``h_t · h_last``, softmax over t, context ``Σ_t α_t h_t``; ``[context, h_last]`` →
    Linear(2·hidden → 81). Dropout acts on the LSTM's outputs, before the attention.
    """

    def __init__(self, bins: int = 128, hidden: int = 1024, dropout: float = 0.5):
        super().__init__(bins)
        require_positive("hidden", hidden)
        require_dropout("dropout", dropout)
        self.lstm = nn.LSTM(1, hidden, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden, self.labels.notes)

    def forward(self, spectra: torch.Tensor) -> torch.Tensor:
        states, _ = self.lstm(spectra.unsqueeze(-1))
        states = self.dropout(states)
        last = states[:, -1]
        weights = torch.softmax(torch.bmm(states, last.unsqueeze(2)).squeeze(2), dim=1)
        context = torch.bmm(weights.unsqueeze(1), states).squeeze(1)
        return self.head(torch.cat([context, last], dim=1))


class LSTMSelfAttention(TranscriptionModel):
    """Bidirectional LSTM with structured self-attention (Lin et al. 2017; report: val AP 0.57).

    ``A = softmax_t(W_s2 tanh(W_s1 Hᵀ))`` is ``[hops, bins]`` per window, ``M = A H`` is ``hops``
    weighted sums of the ``2·hidden``-wide states, flattened → dropout → Linear → 81 logits.
    :meth:`auxiliary_loss` returns ``penalty_coefficient · ‖AAᵀ − I‖²_F`` (mean over the batch),
    which keeps the hops on different parts of the spectrum.

    Choices the report leaves open:

    * ``hops = 8``: a hop can settle on one region of the spectrum, such as one note's fundamental
      and first partials, and the chamber and piano music of MusicNet mostly sounds a handful of
      notes at once. Lin et al.'s 30 hops (for sentences) would make the head ≈ 4× larger, and the
      penalty would push the surplus hops onto uninformative bins.
    * A linear head, not Lin et al.'s MLP: ``M`` already has ``hops·2·hidden`` = 16,384 features,
      and an MLP hidden layer of their size (2,000-3,000 units) would add 30-50 M weights to a model
      that already trains at ≈ 40 windows/s on a CPU.
    * ``penalty_coefficient = 0.01``: Lin et al. use 1 next to a per-sentence cross-entropy; our
      BCE is a mean over 81 labels, ≈ 1/81 of a per-window sum, so 0.01 keeps the same balance.
    """

    def __init__(
        self,
        bins: int = 128,
        hidden: int = 1024,
        attention_size: int = 350,
        hops: int = 8,
        penalty_coefficient: float = 0.01,
        dropout: float = 0.5,
    ):
        super().__init__(bins)
        require_positive("hidden", hidden)
        require_positive("attention_size", attention_size)
        require_positive("hops", hops)
        require_dropout("dropout", dropout)
        if not penalty_coefficient >= 0:
            raise AmtError(f"model.penalty_coefficient must be non-negative, got {penalty_coefficient!r}")
        self.penalty_coefficient = penalty_coefficient
        self.lstm = nn.LSTM(1, hidden, batch_first=True, bidirectional=True)
        self.ws1 = nn.Linear(2 * hidden, attention_size, bias=False)
        self.ws2 = nn.Linear(attention_size, hops, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hops * 2 * hidden, self.labels.notes)
        self._penalty: torch.Tensor | None = None

    def forward(self, spectra: torch.Tensor) -> torch.Tensor:
        states, _ = self.lstm(spectra.unsqueeze(-1))
        attention = torch.softmax(self.ws2(torch.tanh(self.ws1(states))), dim=1).transpose(1, 2)
        self._penalty = attention_penalty(attention)
        return self.head(self.dropout(torch.bmm(attention, states).flatten(1)))

    def auxiliary_loss(self) -> torch.Tensor:
        if self._penalty is None:
            return super().auxiliary_loss()
        return self.penalty_coefficient * self._penalty


def attention_penalty(attention: torch.Tensor) -> torch.Tensor:
    """``‖AAᵀ − I‖²_F`` of attention matrices ``[batch, hops, steps]``, averaged over the batch."""
    gram = torch.bmm(attention, attention.transpose(1, 2))
    identity = torch.eye(attention.shape[1], dtype=attention.dtype, device=attention.device)
    return (gram - identity).pow(2).sum(dim=(1, 2)).mean()
