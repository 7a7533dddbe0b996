"""Context models: a spectrogram excerpt ``[batch, frames, bands]`` → onset and frame logits per frame.

The report's future work: hear a note's attack and its sustain across adjacent frames instead of
one 93 ms window. In the spirit of Onsets and Frames (Hawthorne et al. 2018), scaled for a CPU:

* the **front end** the model was trained on, which its config carries: the frame grid (``hop``,
  ``window``) and the log-frequency bands (``bands``, :class:`amt.features.LogFrequency`);
* optional **harmonic stacking** (``harmonics``): the spectrogram shifted down by each harmonic's
  interval and stacked as channels, so a note's partials line up with its key (basic-pitch's
  harmonic CQT and harmonica-amt's shift-and-aggregate, on log-frequency bands); the default,
  ``[1]``, is the spectrogram itself;
* a per-frame **acoustic encoder**: three 3×3 convolutions over (time, log-frequency) with batch
  norm, pooling over frequency, then a linear layer to ``features`` units per frame;
* a **temporal model** across frames: a bidirectional GRU (``temporal: gru``), or a stack of
  dilated residual 1-D convolutions (``temporal: tcn``, receptive field ±(2^levels − 1) frames),
  which is faster on a CPU;
* **heads**: onsets; optionally offsets (``offsets``, Onsets and Frames' 2019 offset head) and
  velocities (``velocities``, a sigmoid of the MIDI velocity / 127 at a note's onset frame, as in
  Hawthorne et al. 2019); and frames from the temporal features plus the (detached) onset and offset
  probabilities, so that a note's sustain is tied to its attack and its release.

``forward`` returns ``{"onset", "frame"}`` (and ``"offset"``, ``"velocity"``) logits, each ``[batch,
frames, notes]`` for the model's label space (``notes``: 81, the report's A0..F7, or 88, A0..C8; a
checkpoint that names none is 81 notes); the LightningModule sums the heads' losses and scores AP on
``frame``. A checkpoint's config says how to transcribe with it: its grid, bands and label space.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from amt.errors import AmtError
from amt.features import DEFAULT_BANDS, LogFrequency
from amt.grid import CONTEXT_GRID, FrameGrid
from amt.labels import LabelSpace
from amt.models.base import TranscriptionModel, require_dropout, require_positive


class HarmonicStack(nn.Module):
    """``[B, T, bands]`` → ``[B, len(harmonics), T, key bands]``: channel ``i`` holds, at each key's band,
    the band ``12·log2(harmonics[i])`` semitones above it (zeros past the top)."""

    def __init__(self, harmonics: Sequence[float], bands: LogFrequency):
        super().__init__()
        if not harmonics or any(h <= 0 for h in harmonics):
            raise AmtError(f"model.harmonics must be positive numbers, got {list(harmonics)!r}")
        self.shifts = [round(12 * math.log2(h) * bands.bands_per_semitone) for h in harmonics]
        self.key_bands = bands.key_bands

    def forward(self, spectrogram: torch.Tensor) -> torch.Tensor:
        channels = []
        for shift in self.shifts:
            if shift >= 0:
                piece = spectrogram[..., shift : shift + self.key_bands]
                piece = F.pad(piece, (0, self.key_bands - piece.shape[-1]))
            else:
                piece = F.pad(spectrogram[..., : self.key_bands + shift], (-shift, 0))
            channels.append(piece)
        return torch.stack(channels, dim=1)


class AcousticEncoder(nn.Module):
    """``[B, C, T, bands]`` → ``[B, T, features]``: convolutions over time and frequency, per-frame projection."""

    def __init__(self, bands: int, channels: int, features: int, dropout: float, inputs: int = 1):
        super().__init__()

        def block(inputs: int, outputs: int) -> list[nn.Module]:
            return [nn.Conv2d(inputs, outputs, 3, padding=1, bias=False), nn.BatchNorm2d(outputs), nn.ReLU()]

        self.convs = nn.Sequential(
            *block(inputs, channels),
            *block(channels, channels),
            nn.MaxPool2d((1, 2)),
            *block(channels, 2 * channels),
            nn.MaxPool2d((1, 2)),
            nn.Dropout(dropout),
        )
        self.project = nn.Sequential(nn.Linear(2 * channels * (bands // 4), features), nn.ReLU(), nn.Dropout(dropout))

    def forward(self, stacked: torch.Tensor) -> torch.Tensor:
        x = self.convs(stacked)  # [B, C, T, bands/4]
        return self.project(x.permute(0, 2, 1, 3).flatten(2))


class TemporalConvolution(nn.Module):
    """Residual blocks of non-causal dilated 1-D convolutions (dilations 1, 2, 4, …) across frames."""

    def __init__(self, width: int, levels: int, dropout: float):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv1d(width, width, 3, padding=2**level, dilation=2**level),
                nn.BatchNorm1d(width),
                nn.ReLU(),
                nn.Dropout(dropout),
            )
            for level in range(levels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2)  # [B, width, T]
        for block in self.blocks:
            x = x + block(x)
        return x.transpose(1, 2)


class ContextTranscriber(TranscriptionModel):
    """Spectrogram excerpts ``[batch, frames, bins]`` → head logits ``[batch, frames, notes]``.

    ``hop`` and ``window`` (samples) set the frame grid, ``bands`` the log-frequency bands (``bins``,
    when given, must be their count), ``harmonics`` the harmonic stacking; ``notes`` the label space;
    ``offsets`` and ``velocities`` add those heads; ``channels`` and ``features`` size the acoustic
    encoder; ``temporal`` is ``gru`` (``hidden`` units each way) or ``tcn`` (``levels`` dilated
    blocks); ``dropout`` acts in the encoder and the TCN.
    """

    context = True

    def __init__(
        self,
        bins: int | None = None,
        hop: int = CONTEXT_GRID.hop,
        window: int = CONTEXT_GRID.window,
        bands: LogFrequency | None = None,
        harmonics: Sequence[float] = (1.0,),
        channels: int = 16,
        features: int = 192,
        temporal: str = "gru",
        hidden: int = 96,
        levels: int = 5,
        dropout: float = 0.1,
        notes: int = 81,
        offsets: bool = False,
        velocities: bool = False,
    ):
        bands = bands or DEFAULT_BANDS
        super().__init__(bands.bands)
        if bins is not None and bins != bands.bands:
            raise AmtError(f"model.bins must be {bands.bands} (the model's log-frequency bands), got {bins}")
        self.labels, self.bands = LabelSpace(notes), bands
        for name, value in (("hop", hop), ("channels", channels), ("features", features), ("hidden", hidden)):
            require_positive(name, value)
        require_dropout("dropout", dropout)
        self.grid, self.temporal_kind = FrameGrid(hop, window), temporal
        self.stack = HarmonicStack(harmonics, bands)
        self.encoder = AcousticEncoder(bands.key_bands, channels, features, dropout, inputs=len(harmonics))
        if temporal == "gru":
            self.temporal = nn.GRU(features, hidden, batch_first=True, bidirectional=True)
            width = 2 * hidden
        elif temporal == "tcn":
            require_positive("levels", levels)
            self.temporal = TemporalConvolution(features, levels, dropout)
            width = features
        else:
            raise AmtError(f"model.temporal must be gru or tcn, got {temporal!r}")
        self.onset_head = nn.Linear(width, notes)
        self.offset_head = nn.Linear(width, notes) if offsets else None
        self.velocity_head = nn.Linear(width, notes) if velocities else None
        conditions = notes * (2 if offsets else 1)
        self.frame_head = nn.Sequential(nn.Linear(width + conditions, width), nn.ReLU(), nn.Linear(width, notes))

    def forward(self, spectrogram: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.encoder(self.stack(spectrogram))
        x = self.temporal(x)[0] if isinstance(self.temporal, nn.GRU) else self.temporal(x)
        heads = {"onset": self.onset_head(x)}
        if self.offset_head is not None:
            heads["offset"] = self.offset_head(x)
        if self.velocity_head is not None:
            heads["velocity"] = self.velocity_head(x)
        conditions = [torch.sigmoid(heads[name]).detach() for name in ("onset", "offset") if name in heads]
        heads["frame"] = self.frame_head(torch.cat([x, *conditions], dim=-1))
        return heads
