"""The ridge baseline: closed-form regression on FFT features, scored by micro AP."""

import numpy as np

from amt.baselines import ridge_baseline


def test_ridge_separates_pure_tones(tmp_path):
    """One sine per window, labelled with its pitch: FFT features make this linearly separable."""
    rng = np.random.default_rng(1)
    t = np.arange(4096) / 44_100
    for split, n in {"train": 400, "valid": 100, "test": 100}.items():
        pitches = rng.integers(48, 72, size=n)
        audio = np.sin(2 * np.pi * 440 * 2 ** ((pitches[:, None] - 69) / 12) * t + rng.random((n, 1)) * 6)
        labels = np.zeros((n, 128))
        labels[np.arange(n), pitches] = 1
        np.save(tmp_path / f"audio-{split}.npy", audio.astype(np.float32))
        np.save(tmp_path / f"labels-{split}.npy", labels)
    results = ridge_baseline(tmp_path, bins=512, ridge=1e-3)
    assert results["test/ap"] > 0.9 and results["train/ap"] >= results["test/ap"] - 0.05
