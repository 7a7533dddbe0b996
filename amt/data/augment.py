"""Augmentation of spectrogram crops, for robustness to new instruments, rooms and recordings.

Applied to the cached log-frequency features (``log1p`` of band magnitudes, ``bands_per_semitone``
bands to a semitone), so augmenting costs no audio decoding or FFT. Each transform works on magnitudes
``m = expm1(x)`` and the result goes back through ``log1p``:

* gain: ``m · g``, ``g`` up to ±``gain_db``;
* EQ: ``m · 10^(c(band)/20)``, ``c`` a random smooth curve (a tilt plus two broad bumps) up to ±``eq_db``;
* reverb (probability ``reverb``): each band convolved with an exponential tail of a random decay
  time in ``reverb_s``, mixed in at a random level, which smears notes forward in time as a hall does;
* noise (probability ``noise``): a random-coloured noise floor ``noise_db`` below the crop's peak;
* pitch shift: by ``k`` semitones, ``|k| ≤ pitch_shift``, shifting the bands by ``k`` semitones and every
  target by ``k`` (notes shifted out of the label space are dropped);
* mixing (probability ``mix``): another random crop added at a random level, targets united (the
  louder velocity where both crops start the same note in the same frame).

Everything draws from torch's global generator, so runs are reproducible under ``seed``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from amt.errors import AmtError
from amt.features import DEFAULT_BANDS
from amt.grid import CONTEXT_GRID, FrameGrid

Crop = tuple[torch.Tensor, dict[str, torch.Tensor]]
"""Features ``[frames, bands]`` and targets name → ``[frames, notes]``."""
REVERB_TAIL_FRAMES = 64


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


def _shift(tensor: torch.Tensor, steps: int) -> torch.Tensor:
    """Shift along the last axis by ``steps`` (positive: upwards), filling with zeros."""
    if steps == 0:
        return tensor
    out = torch.zeros_like(tensor)
    if steps > 0:
        out[..., steps:] = tensor[..., :-steps]
    else:
        out[..., :steps] = tensor[..., -steps:]
    return out


@dataclass
class SpectrogramAugment:
    """Augments one training crop: ``(features, targets)`` → the same, transformed (module docstring).

    ``gain_db``, ``eq_db`` and ``pitch_shift`` bound their transforms; ``reverb``, ``noise`` and
    ``mix`` are probabilities per crop, ``reverb_s`` and ``noise_db`` the ranges drawn from; ``hop``
    is the model's frame hop (the data configs take ``${model.hop}``), which sets the reverberation's
    time scale, and ``bands_per_semitone`` the model's (``${model.bands.bands_per_semitone}``).
    """

    gain_db: float = 12.0
    eq_db: float = 6.0
    reverb: float = 0.3
    reverb_s: tuple[float, float] = (0.2, 1.5)
    noise: float = 0.3
    noise_db: tuple[float, float] = (30.0, 60.0)
    pitch_shift: int = 2
    mix: float = 0.0
    hop: int = CONTEXT_GRID.hop
    bands_per_semitone: int = DEFAULT_BANDS.bands_per_semitone

    def __post_init__(self):
        for name in ("reverb", "noise", "mix"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise AmtError(f"augment.{name} is a probability in [0, 1], got {getattr(self, name)}")
        if self.pitch_shift < 0 or self.gain_db < 0 or self.eq_db < 0:
            raise AmtError("augment.pitch_shift, gain_db and eq_db must not be negative")

    def __call__(
        self,
        features: torch.Tensor,
        targets: dict[str, torch.Tensor],
        another_crop: Callable[[], Crop] | None = None,
    ) -> Crop:
        magnitudes = torch.expm1(features.float())
        if self.mix > 0 and another_crop is not None and float(torch.rand(())) < self.mix:
            other, other_targets = another_crop()
            magnitudes = magnitudes + torch.expm1(other.float()) * _uniform(0.3, 1.0)
            targets = {name: torch.maximum(target, other_targets[name]) for name, target in targets.items()}
        magnitudes = magnitudes * 10 ** (_uniform(-self.gain_db, self.gain_db) / 20)
        magnitudes = magnitudes * 10 ** (self._eq_curve(magnitudes.shape[-1]) / 20)
        if float(torch.rand(())) < self.reverb:
            magnitudes = self._reverberate(magnitudes)
        if float(torch.rand(())) < self.noise:
            magnitudes = self._add_noise(magnitudes)
        features = torch.log1p(magnitudes)
        semitones = int(torch.randint(-self.pitch_shift, self.pitch_shift + 1, ())) if self.pitch_shift else 0
        if semitones:
            features = _shift(features, semitones * self.bands_per_semitone)
            targets = {name: _shift(target, semitones) for name, target in targets.items()}
        return features, targets

    def _eq_curve(self, bands: int) -> torch.Tensor:
        position = torch.linspace(0, 1, bands)
        curve = _uniform(-1, 1) * (position - 0.5) * 2
        for _ in range(2):
            centre, width = _uniform(0, 1), _uniform(0.05, 0.3)
            curve = curve + _uniform(-1, 1) * torch.exp(-0.5 * ((position - centre) / width) ** 2)
        return self.eq_db * curve / max(1.0, float(curve.abs().max()))

    def _reverberate(self, magnitudes: torch.Tensor) -> torch.Tensor:
        """Each band plus its past, decaying by 60 dB over the reverberation time (a causal convolution)."""
        seconds_per_frame = FrameGrid(self.hop).hop_s
        decay = math.log(1000.0) * seconds_per_frame / _uniform(*self.reverb_s)
        tail = torch.exp(-decay * torch.arange(1, REVERB_TAIL_FRAMES + 1, dtype=torch.float32))
        kernel = torch.cat([tail.flip(0), torch.zeros(1)]).view(1, 1, -1)
        bands = magnitudes.T.unsqueeze(1)  # [bands, 1, frames]
        wet = F.conv1d(F.pad(bands, (REVERB_TAIL_FRAMES, 0)), kernel).squeeze(1).T
        return magnitudes + _uniform(0.1, 0.6) * wet / tail.sum()

    def _add_noise(self, magnitudes: torch.Tensor) -> torch.Tensor:
        level = float(magnitudes.max()) * 10 ** (-_uniform(*self.noise_db) / 20)
        colour = 10 ** (_uniform(-1, 1) * torch.linspace(-0.5, 0.5, magnitudes.shape[-1]))  # ±10 dB tilt
        noise = torch.rand_like(magnitudes) * colour
        return magnitudes + level * noise
