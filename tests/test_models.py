"""The models: shapes, the banded convolution against nn.Conv1d, residual wiring, attention penalty, config errors."""

import pytest
import torch
from torch import nn

from amt.errors import AmtError
from amt.labels import REPORT_NOTES
from amt.models.cnn import CNN1Layer, CNNMulti, SameConv1d
from amt.models.lstm import LSTMAttention, LSTMClassifier, LSTMSelfAttention, attention_penalty

SMALL_MODELS = [
    lambda: CNN1Layer(bins=64, kernel_size=9),
    lambda: CNNMulti(bins=64, layers=4, layers_per_skip=2, kernel_size=9),
    lambda: CNNMulti(bins=70, layers=3, layers_per_skip=3, kernel_size=65, activation="gelu", dropout=0.2),
    lambda: LSTMClassifier(bins=12, hidden=16),
    lambda: LSTMAttention(bins=12, hidden=16),
    lambda: LSTMSelfAttention(bins=12, hidden=16, attention_size=8, hops=3),
]


@pytest.mark.parametrize("make", SMALL_MODELS)
def test_every_model_maps_spectra_to_note_logits_and_trains(make):
    torch.manual_seed(0)
    model = make()
    spectra = torch.rand(5, model.bins)
    logits = model(spectra)
    assert logits.shape == (5, REPORT_NOTES.notes) and logits.dtype == torch.float32
    loss = logits.square().mean() + model.auxiliary_loss()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_defaults_are_the_reports_architectures():
    assert CNN1Layer().bins == CNNMulti().bins == 512
    assert LSTMClassifier().bins == LSTMAttention().bins == 128
    multi = CNNMulti()
    convs = [m for m in multi.modules() if isinstance(m, SameConv1d)]
    assert len(convs) == 12 and len(multi.blocks) == 4 and {c.kernel_size for c in convs} == {65}
    assert sum(p.numel() for p in multi.parameters()) == 12 * 66 + 512 * 81 + 81
    lstm = LSTMClassifier()
    assert lstm.lstm.hidden_size == 1024 and lstm.dropout.p == 0.8 and LSTMAttention().dropout.p == 0.5


def test_models_without_an_auxiliary_loss_return_zero():
    for model in (CNN1Layer(bins=32, kernel_size=3), LSTMClassifier(bins=4, hidden=4), LSTMAttention(bins=4, hidden=4)):
        model(torch.rand(2, model.bins))
        assert model.auxiliary_loss().item() == 0.0


@pytest.mark.parametrize("kernel_size", [1, 3, 9, 33, 63, 65, 67, 129])
@pytest.mark.parametrize("length", [1, 31, 32, 100, 512])
def test_same_conv_equals_nn_conv1d_in_outputs_and_all_gradients(kernel_size, length):
    torch.manual_seed(kernel_size * 1000 + length)
    fast = SameConv1d(kernel_size).double()
    reference = nn.Conv1d(1, 1, kernel_size, padding=kernel_size // 2).double()
    reference.load_state_dict(fast.state_dict())
    x = torch.randn(6, length, dtype=torch.float64, requires_grad=True)
    y = fast(x)
    y_ref = reference(x.unsqueeze(1)).squeeze(1)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(y)
    ours = torch.autograd.grad(y, (x, fast.weight, fast.bias), grad)
    theirs = torch.autograd.grad(y_ref, (x, reference.weight, reference.bias), grad)
    for mine, expected in zip(ours, theirs, strict=True):
        torch.testing.assert_close(mine, expected, rtol=1e-12, atol=1e-12)


def test_same_conv_in_float32_matches_nn_conv1d_within_float_rounding():
    torch.manual_seed(1)
    fast = SameConv1d(65)
    reference = nn.Conv1d(1, 1, 65, padding=32)
    reference.load_state_dict(fast.state_dict())
    x = torch.rand(32, 512, requires_grad=True) * 100
    y, y_ref = fast(x), reference(x.unsqueeze(1)).squeeze(1)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-4)
    grad = torch.randn_like(y)
    ours = torch.autograd.grad(y, (x, fast.weight, fast.bias), grad)
    theirs = torch.autograd.grad(y_ref, (x, reference.weight, reference.bias), grad)
    for mine, expected in zip(ours, theirs, strict=True):
        torch.testing.assert_close(mine, expected, rtol=1e-4, atol=1e-3)


def test_same_conv_passes_gradcheck_and_skips_the_input_gradient_when_not_needed():
    conv = SameConv1d(7).double()
    x = torch.randn(3, 40, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(conv, (x,))
    y = conv(torch.randn(3, 40, dtype=torch.float64))
    y.sum().backward()
    assert conv.weight.grad is not None and conv.bias.grad is not None


def test_same_conv_initialises_like_nn_conv1d():
    torch.manual_seed(0)
    weights = torch.cat([SameConv1d(65).weight.detach().flatten() for _ in range(200)])
    bound = 1 / 65**0.5
    assert weights.abs().max() <= bound and weights.abs().max() > 0.95 * bound
    assert abs(weights.mean()) < 0.01


def test_zero_convolutions_leave_only_the_identity_paths():
    torch.manual_seed(0)
    model = CNNMulti(bins=64, layers=6, layers_per_skip=3, kernel_size=9)
    for conv in model.modules():
        if isinstance(conv, SameConv1d):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
    spectra = torch.rand(4, 64)
    torch.testing.assert_close(model(spectra), model.head(spectra))


def test_each_block_adds_its_branch_to_its_input():
    torch.manual_seed(0)
    model = CNNMulti(bins=64, layers=3, layers_per_skip=3, kernel_size=9)
    block = model.blocks[0]
    spectra = torch.rand(4, 64)
    branch = spectra
    for conv in block.convs:
        branch = torch.relu(conv(branch))
    torch.testing.assert_close(block(spectra), spectra + branch)
    torch.testing.assert_close(model(spectra), model.head(spectra + branch))


def test_attention_penalty_is_zero_for_orthogonal_rows_and_positive_otherwise():
    one_hot = torch.zeros(2, 3, 10)
    for hop, position in enumerate((1, 4, 7)):
        one_hot[:, hop, position] = 1.0
    assert attention_penalty(one_hot).item() == 0.0
    uniform = torch.full((2, 3, 10), 0.1)
    # AAᵀ = 0.1 everywhere: (0.1 - 1)² on the diagonal, 0.1² off it.
    assert attention_penalty(uniform).item() == pytest.approx(3 * 0.81 + 6 * 0.01)
    same_row = one_hot.clone()
    same_row[:, 1] = same_row[:, 0]
    assert attention_penalty(same_row).item() == pytest.approx(2.0)


def test_self_attention_auxiliary_loss_is_the_weighted_penalty_of_the_last_forward():
    torch.manual_seed(0)
    model = LSTMSelfAttention(bins=12, hidden=8, attention_size=6, hops=4, penalty_coefficient=0.5)
    assert model.auxiliary_loss().item() == 0.0
    spectra = torch.rand(3, 12)
    model(spectra)
    states, _ = model.lstm(spectra.unsqueeze(-1))
    attention = torch.softmax(model.ws2(torch.tanh(model.ws1(states))), dim=1).transpose(1, 2)
    torch.testing.assert_close(attention.sum(dim=2), torch.ones(3, 4))
    torch.testing.assert_close(model.auxiliary_loss(), 0.5 * attention_penalty(attention))
    assert model.auxiliary_loss().item() > 0


def test_lstm_dropout_acts_on_the_outputs_in_training_only():
    torch.manual_seed(0)
    model = LSTMClassifier(bins=8, hidden=16, dropout=0.8)
    spectra = torch.rand(4, 8)
    model.train()
    assert not torch.equal(model(spectra), model(spectra))
    model.eval()
    assert torch.equal(model(spectra), model(spectra))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: CNNMulti(dropout=-0.1), "dropout"),
        (lambda: CNNMulti(dropout=1.0), "dropout"),
        (lambda: CNNMulti(layers=10, layers_per_skip=3), "multiple of model.layers_per_skip"),
        (lambda: CNNMulti(layers=0), "layers"),
        (lambda: CNNMulti(kernel_size=64), "odd"),
        (lambda: CNN1Layer(kernel_size=0), "kernel_size"),
        (lambda: CNNMulti(activation="swishy"), "unknown model.activation 'swishy'"),
        (lambda: CNN1Layer(bins=0), "bins"),
        (lambda: LSTMClassifier(hidden=0), "hidden"),
        (lambda: LSTMAttention(dropout=1.5), "dropout"),
        (lambda: LSTMSelfAttention(hops=0), "hops"),
        (lambda: LSTMSelfAttention(penalty_coefficient=-1.0), "penalty_coefficient"),
    ],
)
def test_bad_model_config_raises_one_clear_amt_error(make, message):
    with pytest.raises(AmtError, match=message) as error:
        make()
    assert "\n" not in str(error.value)
