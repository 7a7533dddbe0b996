"""Growing a transcriber into a wider, deeper one: the same outputs at the start, new units that learn."""

import pytest
import torch

from amt.checkpoint import load
from amt.errors import AmtError
from amt.grow import grow, grow_from
from amt.models.context import ContextTranscriber

FIRST_GENERATION = "amt/weights/context_default.ckpt"  # 24 channels, 256 features, 6 levels, 81 notes
WIDE = dict(channels=32, features=384, temporal="tcn", notes=81)


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


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ({**WIDE, "channels": 16}, "larger than"),
        ({**WIDE, "notes": 88}, "another label space"),
        ({**WIDE, "offsets": True}, "another offset head"),
        ({**WIDE, "temporal": "gru"}, "another temporal model"),
    ],
    ids=["smaller", "88 notes", "an offset head", "gru"],
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
