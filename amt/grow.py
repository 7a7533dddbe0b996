"""Grow a context model into a wider and deeper one that starts out computing the same function.

Training a larger transcriber from scratch on this CPU spends its first sessions catching up with the
model it should replace. Function-preserving growth (Net2Net, Chen et al. 2016, here in its
zero-initialised form) starts it where the smaller one ended:

* every weight of the smaller model is copied into the leading slice of the larger one's tensor;
* an old unit's connections *from* new units (its extra input columns) are zero, so new channels and
  features change nothing until training opens a path from them, while the connections *into* new
  units keep their random initialisation, so they compute something to learn from;
* a new temporal level is a residual block whose batch norm shift starts at zero and its scale at
  :data:`NEW_LEVEL_SCALE`, so it adds almost nothing. Not exactly nothing: the block ends in a ReLU,
  which passes no gradient where its input is exactly zero, so a zero scale would never learn.

Grown wider only, the model computes exactly what the smaller one does; with new levels, its
probabilities start within about 1e-3 of it (measured by ``tests/test_grow.py``).

The input may grow too: harmonic stacking (``harmonics``) added to a model trained without it, as
basic-pitch and harmonica-amt read their spectrograms. Trained from scratch, that front end learns
slowest of those the front-end study compared; grown, it starts where the trained model is. The bands
gain those above the keys that the harmonics read (``bands_above``) and leave the key bands as they were;
the first convolution's weights from the old stacking channel are copied to that channel's place
among the new ones and its weights from the new channels start at zero.

The frame head reads ``[temporal features, onset probabilities, offset probabilities]``: the
probabilities move to just after the larger model's features. Everything else (the frame grid, the
key bands, label space, heads, temporal model; a GRU's hidden size) must match.
"""

from __future__ import annotations

import os
from dataclasses import replace

import torch
from torch import nn

from amt.checkpoint import load
from amt.errors import AmtError
from amt.models.context import ContextTranscriber

NEW_LEVEL_SCALE = 1e-3
FIRST_CONVOLUTION = "encoder.convs.0.weight"
"""``[channels, stacking channels, 3, 3]``: the parameter whose input channels are the harmonics."""


def grow_from(large: nn.Module, ckpt: str | os.PathLike) -> None:
    """Start ``large`` as the model in ``ckpt``, a smaller context model of the same kind (in place)."""
    small = load(ckpt).model
    if not isinstance(large, ContextTranscriber) or not isinstance(small, ContextTranscriber):
        kinds = f"{type(small).__name__} into {type(large).__name__}"
        raise AmtError(f"{ckpt}: growing takes a context model into a larger one, not {kinds}")
    grow(large, small, ckpt)


def grow(large: ContextTranscriber, small: ContextTranscriber, source: str | os.PathLike = "the smaller model") -> None:
    """Copy ``small``'s weights into ``large`` so that it computes what ``small`` does (in place)."""
    _check_same_kind(large, small, source)
    target, weights = large.state_dict(), small.state_dict()
    grown = {}
    for name, tensor in target.items():
        if name not in weights:  # a new temporal level, scaled down below
            grown[name] = tensor
        elif name == "frame_head.0.weight":
            grown[name] = _frame_head_input(tensor, weights[name], _width(small))
        elif name == FIRST_CONVOLUTION:
            grown[name] = _stacking_input(tensor, weights[name], small.stack.shifts, large.stack.shifts)
        else:
            grown[name] = _embed(tensor, weights[name])
    large.load_state_dict(grown)
    with torch.no_grad():
        for block in list(large.temporal.modules())[len(list(small.temporal.modules())) :]:
            if isinstance(block, nn.BatchNorm1d):
                block.weight.fill_(NEW_LEVEL_SCALE)
                block.bias.zero_()


def _check_same_kind(large: ContextTranscriber, small: ContextTranscriber, source: str | os.PathLike) -> None:
    for what, mine, theirs in (
        ("frame grid", large.grid, small.grid),
        ("key bands", replace(large.bands, bands_above=0), replace(small.bands, bands_above=0)),
        ("label space", large.labels, small.labels),
        ("temporal model", large.temporal_kind, small.temporal_kind),
        ("offset head", large.offset_head is None, small.offset_head is None),
        ("velocity head", large.velocity_head is None, small.velocity_head is None),
    ):
        if mine != theirs:
            raise AmtError(f"{source}: another {what} ({theirs} against {mine}); growing changes only a model's size")
    target, weights = large.state_dict(), small.state_dict()
    for name, old in weights.items():
        if name not in target:
            raise AmtError(f"{source}: {name} has no place in the model to grow into (fewer temporal levels?)")
        new = target[name]
        if any(o > n for o, n in zip(old.shape, new.shape, strict=True)):
            raise AmtError(
                f"{source}: {name} is {tuple(old.shape)}, larger than {tuple(new.shape)} in the model to grow into"
            )
        if name.startswith("temporal.weight_hh") and old.shape != new.shape:
            raise AmtError(f"{source}: a GRU's hidden size cannot grow (its gates are stacked in one tensor)")
    if not set(small.stack.shifts) <= set(large.stack.shifts):
        raise AmtError(
            f"{source}: harmonic stacking {small.stack.shifts} (band shifts) is not a part of {large.stack.shifts};"
            " growing adds harmonics, it does not drop them"
        )
    if large.bands.bands_above < small.bands.bands_above:
        raise AmtError(f"{source}: more bands above the keys ({small.bands.bands_above}) than the model to grow into")


def _width(model: ContextTranscriber) -> int:
    return model.onset_head.in_features


def _embed(tensor: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """``old`` in the leading slice of ``tensor``, its rows' extra input columns (dimension 1) zeroed."""
    grown = tensor.clone()
    if tensor.dim() >= 2:
        grown[: old.shape[0], old.shape[1] :] = 0
    grown[tuple(slice(0, size) for size in old.shape)] = old
    return grown


def _stacking_input(tensor: torch.Tensor, old: torch.Tensor, old_shifts: list[int], shifts: list[int]) -> torch.Tensor:
    """The first convolution: each old stacking channel's weights moved to where that harmonic is among
    the new ones; an old output channel's weights from new harmonics zeroed."""
    grown, rows = tensor.clone(), old.shape[0]
    grown[:rows] = 0
    for column, shift in enumerate(old_shifts):
        grown[:rows, shifts.index(shift)] = old[:, column]
    return grown


def _frame_head_input(tensor: torch.Tensor, old: torch.Tensor, small_width: int) -> torch.Tensor:
    """The frame head's first layer: the old features, the new ones (zeroed), then the probabilities."""
    width = tensor.shape[1] - (old.shape[1] - small_width)
    grown, rows = tensor.clone(), old.shape[0]
    grown[:rows, :small_width] = old[:, :small_width]
    grown[:rows, small_width:width] = 0
    grown[:rows, width:] = old[:, small_width:]
    return grown
