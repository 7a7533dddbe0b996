"""The report's CNNs over FFT magnitudes: one convolution, or twelve with residual skips.

Both convolve the spectrum with 1-in, 1-out channel kernels of 65 bins ('same' padding), which
``nn.Conv1d`` runs badly on a CPU; :class:`SameConv1d` computes exactly the same thing as a
banded matrix product (see its docstring for why and how much faster).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from amt.errors import AmtError
from amt.models.base import TranscriptionModel, require_dropout, require_positive

BLOCK = 32
"""Output samples per row of the banded product: 32 outputs of a 65-tap kernel read 96 inputs,
exactly three blocks, so the band matrix is 68 % non-zero."""

ACTIVATIONS = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "silu": nn.SiLU,
    "sigmoid": nn.Sigmoid,
}


class SameConv1d(nn.Module):
    """``nn.Conv1d(1, 1, kernel_size, padding=kernel_size // 2)`` on ``[batch, length]``, as matrix products.

    Same parameters (``weight [1, 1, k]``, ``bias [1]``, so state dicts are interchangeable), same
    initialisation, and the same outputs and gradients within float rounding (tested against
    ``nn.Conv1d``). ``kernel_size`` must be odd.

    Why it is faster: a 1-channel convolution gives oneDNN almost no work per call, and it runs at a
    small fraction of the CPU's matrix-multiply rate. Here the output is cut into blocks of
    :data:`BLOCK` samples; each block is one row of ``windows`` (the block's inputs plus the kernel's
    reach either side, gathered by one ``unfold``) times one band matrix ``T[r, c] = w[r - c - offset]``
    built from the kernel. The forward pass, the input gradient (a correlation with the reversed
    kernel, whose band matrix is ``T`` flipped both ways) and the kernel gradient (the diagonal sums
    of ``windowsᵀ · grad``) are one GEMM each, ``[batch·length/32, 96] × [96, 32]``, which MKL runs
    near the core's peak (the README's "Measurements behind the defaults" compares it with
    ``nn.Conv1d``, FFT convolution and a dense Toeplitz matrix).
    """

    def __init__(self, kernel_size: int = 65):
        super().__init__()
        require_positive("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise AmtError(f"model.kernel_size must be odd for 'same' padding, got {kernel_size}")
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.empty(1, 1, kernel_size))
        self.bias = nn.Parameter(torch.empty(1))
        # nn.Conv1d's default initialisation: both bounds come out as 1/sqrt(fan_in).
        bound = 1.0 / math.sqrt(kernel_size)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _BandedCorrelation.apply(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}"


class _BandedCorrelation(torch.autograd.Function):
    """``y[n] = b + Σ_k w[k] · x[n + k - k//2]`` (zero outside x), forward and backward as GEMMs."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        band = _band(weight.reshape(-1))
        windows = _windows(x, band)
        ctx.save_for_backward(windows, band)
        ctx.kernel_size = weight.shape[-1]
        return torch.addmm(bias, windows, band).reshape(len(x), -1)[:, : x.shape[1]]

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        windows, band = ctx.saved_tensors
        batch, length = grad.shape
        grad_x = None
        if ctx.needs_input_grad[0]:
            # A correlation's input gradient is the correlation of grad with the reversed kernel,
            # whose band matrix is this one turned upside down and back to front.
            grad_x = (_windows(grad, band) @ band.flip((0, 1))).reshape(batch, -1)[:, :length]
        grad_rows = _pad_to_blocks(grad).reshape(-1, BLOCK)
        grad_kernel = _diagonals(windows.t() @ grad_rows, ctx.kernel_size).sum(dim=1)
        return grad_x, grad_kernel.reshape(1, 1, -1), grad.sum().reshape(1)


def _pad_to_blocks(x: torch.Tensor, left: int = 0, right: int = 0) -> torch.Tensor:
    """``x`` with ``left`` zeros before and ``right`` after each row, plus zeros up to whole blocks."""
    right += -x.shape[1] % BLOCK
    return F.pad(x, (left, right)) if left or right else x


def _windows(x: torch.Tensor, band: torch.Tensor) -> torch.Tensor:
    """``[batch, length]`` → ``[batch · blocks, len(band)]``: each output block's inputs, zero outside x."""
    reach = (len(band) - BLOCK) // 2
    padded = _pad_to_blocks(x, reach, reach)
    return padded.unfold(1, len(band), BLOCK).reshape(-1, len(band))


def _band(kernel: torch.Tensor) -> torch.Tensor:
    """``T[r, c] = kernel[r - c - offset]``: maps a row of :func:`_windows` to its output block.

    ``BLOCK + 2 · reach`` rows, where ``reach`` is the kernel's half-width rounded up to whole blocks.
    """
    size = kernel.numel()
    reach = -(-(size // 2) // BLOCK) * BLOCK
    band = kernel.new_zeros(BLOCK + 2 * reach, BLOCK)
    _diagonals(band, size).copy_(kernel[:, None].expand(size, BLOCK))
    return band


def _diagonals(band: torch.Tensor, size: int) -> torch.Tensor:
    """View ``[size, BLOCK]`` of a contiguous band-shaped matrix: entry ``(k, c)`` is ``band[c + k + offset, c]``."""
    offset = (len(band) - BLOCK) // 2 - size // 2
    return band.as_strided((size, BLOCK), (BLOCK, BLOCK + 1), offset * BLOCK)


class CNN1Layer(TranscriptionModel):
    """The report's baseline: one 65-tap convolution → ReLU → Linear(bins → 81)."""

    def __init__(self, bins: int = 512, kernel_size: int = 65):
        super().__init__(bins)
        self.conv = SameConv1d(kernel_size)
        self.head = nn.Linear(bins, self.labels.notes)

    def forward(self, spectra: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(spectra)))


class ResidualBlock(nn.Module):
    """``x + f(x)`` where ``f`` is ``layers`` × (convolution → dropout → activation)."""

    def __init__(self, layers: int, kernel_size: int, activation: str, dropout: float):
        super().__init__()
        self.convs = nn.ModuleList(SameConv1d(kernel_size) for _ in range(layers))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.activation = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for conv in self.convs:
            out = self.activation(self.dropout(conv(out)))
        return x + out


class CNNMulti(TranscriptionModel):
    """The report's best model: ``layers`` convolutions with a residual skip around every ``layers_per_skip``.

    Defaults are the report's: 12 layers, a skip every 3, kernel 65, ReLU, dropout 0 (dropout sits
    before each activation; the report found any dropout lowered both train and validation AP).
    """

    def __init__(
        self,
        bins: int = 512,
        layers: int = 12,
        layers_per_skip: int = 3,
        kernel_size: int = 65,
        activation: str = "relu",
        dropout: float = 0.0,
    ):
        super().__init__(bins)
        require_positive("layers", layers)
        require_positive("layers_per_skip", layers_per_skip)
        require_dropout("dropout", dropout)
        if layers % layers_per_skip:
            raise AmtError(f"model.layers ({layers}) must be a multiple of model.layers_per_skip ({layers_per_skip})")
        if activation not in ACTIVATIONS:
            raise AmtError(f"unknown model.activation '{activation}' (choose from: {', '.join(ACTIVATIONS)})")
        self.blocks = nn.Sequential(
            *(
                ResidualBlock(layers_per_skip, kernel_size, activation, dropout)
                for _ in range(layers // layers_per_skip)
            )
        )
        self.head = nn.Linear(bins, self.labels.notes)

    def forward(self, spectra: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(spectra))
