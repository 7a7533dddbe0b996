"""Growing a transcriber into a wider, deeper one: the same outputs at the start, new units that learn."""

import numpy as np
import pytest
import torch

from amt.checkpoint import load
from amt.errors import AmtError
from amt.features import LogFrequency, log_frequency_spectrogram
from amt.grid import CONTEXT_GRID
from amt.grow import grow, grow_from
from amt.models.context import ContextTranscriber

FIRST_GENERATION = "amt/weights/context_default.ckpt"  # 24 channels, 256 features, 6 levels, 81 notes
WIDE = dict(channels=32, features=384, temporal="tcn", notes=81)
STACKED = dict(harmonics=[0.5, 1, 2, 3, 4, 5, 6, 7], bands=LogFrequency(bands_above=27))  # conf/frontend/harmonic


@pytest.fixture(scope="module")
def small():
    return load(FIRST_GENERATION).model


def outputs(model: ContextTranscriber, spectrogram: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.inference_mode():
        return {head: logits.sigmoid() for head, logits in model.eval()(spectrogram).items()}


@pytest.mark.parametrize(("levels", "tolerance"), [(6, 2e-5), (7, 1e-3)], ids=["wider", "wider and deeper"])
def test_the_grown_model_starts_where_the_trained_one_is(small, levels, tolerance):
    """Exactly when only wider; within 1e-3 in probability with a new temporal level."""
    torch.manual_seed(0)
    wide = ContextTranscriber(levels=levels, **WIDE)
    spectrogram = torch.rand(2, 300, small.bins) * 3
    untouched = outputs(wide, spectrogram)
    grow_from(wide, FIRST_GENERATION)
    before, after = outputs(small, spectrogram), outputs(wide, spectrogram)
    for head in ("onset", "frame"):
        torch.testing.assert_close(after[head], before[head], atol=tolerance, rtol=0)
    assert not torch.allclose(untouched["onset"], before["onset"], atol=1e-2)


def test_offset_and_velocity_heads_and_the_frame_head_s_conditions_grow_too():
    torch.manual_seed(1)
    heads = dict(temporal="tcn", notes=88, offsets=True, velocities=True)
    small, wide = (
        ContextTranscriber(channels=8, features=32, levels=3, **heads),
        ContextTranscriber(channels=12, features=48, levels=3, **heads),
    )
    grow(wide, small)
    spectrogram = torch.rand(1, 80, small.bins) * 3
    before, after = outputs(small, spectrogram), outputs(wide, spectrogram)
    assert set(after) == {"onset", "offset", "velocity", "frame"}
    for head in after:
        torch.testing.assert_close(after[head], before[head], atol=2e-5, rtol=0)


def test_the_new_units_receive_gradients_from_the_first_step(small):
    wide = ContextTranscriber(levels=7, **WIDE)
    grow(wide, small)
    heads = wide.train()(torch.rand(2, 100, small.bins))
    sum(logits.sigmoid().mean() for logits in heads.values()).backward()
    new_level = wide.temporal.blocks[6][1]
    assert new_level.weight.max() < 0.01 and new_level.weight.grad.abs().sum() > 0
    assert wide.onset_head.weight.grad[:, 256:].abs().sum() > 0  # from the new features
    assert wide.encoder.project[0].weight.grad[:, 48 * 44 :].abs().sum() > 0  # from the new channels


def chords(seconds: float = 3.0) -> np.ndarray:
    """A low piano-like chord a second, with eight partials each, over a little noise."""
    rate = CONTEXT_GRID.sample_rate
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(0)
    samples = 0.01 * rng.standard_normal(len(t))
    for second, pitches in enumerate([(33, 45, 52), (40, 47, 56), (28, 40, 59)]):
        sounding = (t >= second) * np.exp(-3 * np.clip(t - second, 0, None))
        for pitch in pitches:
            f0 = 440 * 2 ** ((pitch - 69) / 12)
            samples += sounding * sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 9))
    return samples.astype(np.float32)


def test_harmonic_stacking_grows_in_and_starts_where_the_trained_model_is(small):
    """The stacked front end's key bands are the old front end's; the new harmonics start switched off."""
    torch.manual_seed(2)
    stacked = ContextTranscriber(levels=6, **WIDE, **STACKED)
    grow(stacked, small)
    audio = chords()
    plain = torch.from_numpy(log_frequency_spectrogram(audio, small.grid, small.bands))[None]
    with_harmonics = torch.from_numpy(log_frequency_spectrogram(audio, stacked.grid, stacked.bands))[None]
    assert with_harmonics.shape[-1] == plain.shape[-1] + 27 * 2
    before, after = outputs(small, plain), outputs(stacked, with_harmonics)
    for head in ("onset", "frame"):
        torch.testing.assert_close(after[head], before[head], atol=2e-5, rtol=0)
    heads = stacked.train()(with_harmonics)
    sum(logits.sigmoid().mean() for logits in heads.values()).backward()
    gradient = stacked.encoder.convs[0].weight.grad[:24]  # the trained channels, from each harmonic
    assert (gradient.abs().sum(dim=(0, 2, 3)) > 0).all()


@pytest.mark.parametrize(
    ("front_end", "message"),
    [
        ({"harmonics": [2, 3]}, "does not drop them"),
        ({"bands": LogFrequency(bands_per_semitone=3)}, "another key bands"),
    ],
    ids=["harmonics dropped", "3 bands a semitone"],
)
def test_growing_into_another_front_end_is_refused(front_end, message):
    with pytest.raises(AmtError, match=message):
        grow_from(ContextTranscriber(**WIDE, levels=6, **front_end), FIRST_GENERATION)


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ({**WIDE, "channels": 16}, "larger than"),
        ({**WIDE, "levels": 5}, "fewer temporal levels"),
        ({**WIDE, "notes": 88}, "another label space"),
        ({**WIDE, "offsets": True}, "another offset head"),
        ({**WIDE, "temporal": "gru"}, "another temporal model"),
    ],
    ids=["smaller", "fewer levels", "88 notes", "an offset head", "gru"],
)
def test_growing_into_a_model_of_another_kind_is_refused(sizes, message):
    with pytest.raises(AmtError, match=message):
        grow_from(ContextTranscriber(**sizes), FIRST_GENERATION)


def test_a_gru_grows_wider_inputs_but_not_its_hidden_size():
    small = ContextTranscriber(channels=8, features=32, hidden=16, temporal="gru")
    spectrogram = torch.rand(1, 40, small.bins)
    wider = ContextTranscriber(channels=12, features=48, hidden=16, temporal="gru")
    grow(wider, small)
    torch.testing.assert_close(outputs(wider, spectrogram)["frame"], outputs(small, spectrogram)["frame"])
    with pytest.raises(AmtError, match="hidden size cannot grow"):
        grow(ContextTranscriber(channels=12, features=48, hidden=24, temporal="gru"), small)
