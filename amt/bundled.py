"""Where the models bundled with amt lie (amt/weights/README.md says what they are).

Paths only, so that finding the default model needs no PyTorch; :mod:`amt.checkpoint` loads them.
"""

from pathlib import Path

WEIGHTS = Path(__file__).resolve().parent / "weights"
DEFAULT_CHECKPOINT = WEIGHTS / "default.ckpt"
"""The model ``amt transcribe`` uses without ``--ckpt``."""
CONTEXT_DEFAULT_CHECKPOINT = WEIGHTS / "context_default.ckpt"
"""The first-generation default (``experiment=context_default``: 81 notes, onset and frame heads), kept
for comparison (``--ckpt``)."""
CNN_MULTI_CHECKPOINT = WEIGHTS / "cnn_multi.ckpt"
"""The report's multi-layer CNN trained on the default corpus, bundled for comparison (``--ckpt``)."""
