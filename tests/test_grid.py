"""The frame grid: where frames sit in a recording, their times, and which frame holds a sample."""

import numpy as np
import pytest

from amt.audio import SAMPLE_RATE, WINDOW_SIZE, cut_windows
from amt.errors import AmtError
from amt.grid import CONTEXT_GRID, WINDOW_GRID, FrameGrid


def test_sequential_centres_tile_the_recording_back_to_back():
    centres = WINDOW_GRID.recording_centres(10 * WINDOW_SIZE + 100)
    assert np.all(np.diff(centres) == WINDOW_SIZE) and centres[0] == WINDOW_SIZE // 2
    assert len(centres) == 11  # the last, partial window is kept (zero-padded)
    assert np.all(np.diff(FrameGrid(hop=1024).recording_centres(3 * WINDOW_SIZE)) == 1024)
    with pytest.raises(AmtError, match="shorter than one window"):
        WINDOW_GRID.recording_centres(WINDOW_SIZE - 1)


def test_last_sequential_window_past_the_end_is_zero_padded():
    samples = np.ones(2 * WINDOW_SIZE + 100, dtype=np.float32)
    centres = WINDOW_GRID.recording_centres(len(samples))
    windows = cut_windows(samples, centres)
    assert centres[-1] > len(samples) and windows[-1, :100].sum() == 100 and windows[-1, 100:].sum() == 0


@pytest.mark.parametrize("hop", [1, 7, 512, 1024, 4096, 5000])
@pytest.mark.parametrize("n_samples", [4096, 4097, 8192, 8193, 44_100, 120_000])
def test_windows_go_on_while_they_start_inside_the_recording_and_until_the_last_sample(hop, n_samples):
    starts = FrameGrid(hop).recording_centres(n_samples) - WINDOW_SIZE // 2
    assert starts[0] == 0 and np.all(starts < n_samples) and np.all(np.diff(starts) == hop)
    assert starts[-1] + hop >= min(n_samples, n_samples - WINDOW_SIZE + hop)  # one more would start past both


def test_times_and_hop_in_seconds():
    assert CONTEXT_GRID.hop_s == pytest.approx(1024 / SAMPLE_RATE)
    np.testing.assert_allclose(CONTEXT_GRID.times(3), (np.arange(3) * 1024 + 2048) / SAMPLE_RATE)


def test_each_sample_belongs_to_the_frame_whose_interval_holds_it():
    grid = CONTEXT_GRID
    centres = grid.centres(10)
    samples = np.array([0, centres[3] - 512, centres[3] - 513, centres[3] + 511, 10**9])
    np.testing.assert_array_equal(grid.frame_of(samples, 10), [0, 3, 2, 3, 9])


@pytest.mark.parametrize("settings", [{"hop": 0}, {"hop": 1024, "window": -1}, {"hop": True}, {"hop": 1.5}])
def test_a_grid_needs_positive_whole_numbers_of_samples(settings):
    with pytest.raises(AmtError, match="positive number of samples"):
        FrameGrid(**settings)
