"""Growing the bundled default into a wider, deeper transcriber: same outputs at the start, new units that learn."""

import pytest
import torch

from amt.checkpoint import load
from amt.errors import AmtError
from amt.grow import grow, grow_from
from amt.models.context import ContextTranscriber

DEFAULT = "amt/weights/default.ckpt"
HEADS = dict(notes=88, offsets=True, velocities=True, temporal="tcn")


@pytest.fixture(scope="module")
def default():
    return load(DEFAULT).model


@pytest.mark.parametrize(("levels", "tolerance"), [(6, 2e-5), (7, 1e-3)], ids=["wider", "wider and deeper"])
def test_the_grown_model_starts_where_the_default_is(default, levels, tolerance):
    """Exactly when only wider; within 1e-3 in probability with a new temporal level."""
    torch.manual_seed(0)
    wide = ContextTranscriber(channels=32, features=384, levels=levels, **HEADS)
    spectrogram = torch.rand(2, 300, default.bins) * 3
    untouched = wide.eval()(spectrogram)["onset"]
    grow_from(wide, DEFAULT)
    with torch.inference_mode():
        before, after = default(spectrogram), wide.eval()(spectrogram)
    for head in ("onset", "offset", "velocity", "frame"):
        torch.testing.assert_close(after[head].sigmoid(), before[head].sigmoid(), atol=tolerance, rtol=0)
    assert not torch.allclose(untouched, before["onset"], atol=1e-2)


def test_the_new_units_receive_gradients_from_the_first_step(default):
    wide = ContextTranscriber(channels=32, features=384, levels=7, **HEADS)
    grow(wide, default)
    heads = wide.train()(torch.rand(2, 100, default.bins))
    sum(logits.sigmoid().mean() for logits in heads.values()).backward()
    new_level = wide.temporal.blocks[6][1]
    assert new_level.weight.max() < 0.01 and new_level.weight.grad.abs().sum() > 0
    assert wide.onset_head.weight.grad[:, 256:].abs().sum() > 0  # from the new features
    assert wide.encoder.project[0].weight.grad[:, 48 * 44 :].abs().sum() > 0  # from the new channels


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        (dict(channels=16, features=384, levels=7, **HEADS), "larger than"),
        (dict(channels=32, features=384, levels=7, **{**HEADS, "notes": 81}), "another label space"),
        (dict(channels=32, features=384, levels=7, **{**HEADS, "offsets": False}), "another offset head"),
        (dict(channels=32, features=384, **{**HEADS, "temporal": "gru"}), "another temporal model"),
    ],
    ids=["smaller", "81 notes", "no offset head", "gru"],
)
def test_growing_into_a_model_of_another_kind_is_refused(sizes, message):
    with pytest.raises(AmtError, match=message):
        grow_from(ContextTranscriber(**sizes), DEFAULT)


def test_a_gru_grows_wider_inputs_but_not_its_hidden_size():
    small = ContextTranscriber(channels=8, features=32, hidden=16, temporal="gru")
    spectrogram = torch.rand(1, 40, small.bins)
    wider = ContextTranscriber(channels=12, features=48, hidden=16, temporal="gru")
    grow(wider, small)
    with torch.inference_mode():
        torch.testing.assert_close(wider.eval()(spectrogram)["frame"], small.eval()(spectrogram)["frame"])
    with pytest.raises(AmtError, match="hidden size cannot grow"):
        grow(ContextTranscriber(channels=12, features=48, hidden=24, temporal="gru"), small)
