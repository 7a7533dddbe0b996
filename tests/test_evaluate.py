"""Metrics by hand, decoders compared on re-attacks, and ``amt evaluate`` / ``amt tune`` on real recordings."""

import csv
import json
import shutil
from pathlib import Path

import mir_eval
import numpy as np
import pytest
import torch
from test_transcribe import checkpoint  # noqa: F401 - the shared trained-checkpoint fixture

from amt.audio import SAMPLE_RATE, WINDOW_SIZE, sequential_centres
from amt.cli import main
from amt.errors import AmtError
from amt.evaluate import (
    MIN_NOTE_GRID,
    POOLED,
    ModelRun,
    count_reattacks,
    evaluate,
    find_labelled_recordings,
    score,
    tune_thresholds,
)
from amt.notes import (
    NUM_NOTES,
    DecoderConfig,
    NoteEvent,
    decode,
    events_from_musicnet,
    midi_to_index,
    read_musicnet_csv,
    write_note_csv,
)
from amt.transcribe import checkpoint_decoder_config, load_model

TIMES = sequential_centres(10 * SAMPLE_RATE, hop=1024) / SAMPLE_RATE  # 10 s at a 23 ms hop
REFERENCE = [NoteEvent(0.5, 1.5, 60), NoteEvent(1.0, 2.0, 64), NoteEvent(3.0, 5.0, 67), NoteEvent(6.0, 6.4, 72)]


def shifted(events: list[NoteEvent], seconds: float) -> list[NoteEvent]:
    return [NoteEvent(e.onset_s + seconds, e.offset_s + seconds, e.pitch, e.velocity) for e in events]


def test_perfect_prediction():
    metrics = score(REFERENCE, REFERENCE, TIMES).metrics()
    for name in ("frame_precision", "frame_recall", "frame_f1", "note_f1", "note_offset_f1"):
        assert metrics[name] == 1.0, name
    assert metrics["reattacks_per_note"] == 0.0


def test_empty_prediction():
    metrics = score(REFERENCE, [], TIMES).metrics()
    assert metrics["frame_f1"] == metrics["note_f1"] == metrics["note_offset_f1"] == 0.0
    assert metrics["frame_recall"] == 0.0 and metrics["reference_notes"] == 4


def test_onsets_within_50_ms_match_and_beyond_do_not():
    assert score(REFERENCE, shifted(REFERENCE, 0.030), TIMES).metrics()["note_f1"] == 1.0
    assert score(REFERENCE, shifted(REFERENCE, -0.030), TIMES).metrics()["note_offset_f1"] == 1.0
    late = score(REFERENCE, shifted(REFERENCE, 0.070), TIMES).metrics()
    assert late["note_f1"] == 0.0 and late["frame_f1"] > 0.9


def test_offsets_count_within_20_percent_of_the_note():
    stretched = [NoteEvent(e.onset_s, e.onset_s + 1.3 * (e.offset_s - e.onset_s), e.pitch) for e in REFERENCE]
    metrics = score(REFERENCE, stretched, TIMES).metrics()
    assert metrics["note_f1"] == 1.0 and metrics["note_offset_f1"] == 0.0


def test_a_held_note_split_in_three_is_two_reattacks():
    split = [NoteEvent(t, t + 1 / 3, 60) for t in (0.5, 0.5 + 1 / 3, 0.5 + 2 / 3)]
    assert count_reattacks(REFERENCE[:1], split) == 2
    metrics = score(REFERENCE[:1], split, TIMES).metrics()
    assert metrics["reattacks_per_note"] == 2.0 and metrics["note_precision"] == pytest.approx(1 / 3)
    assert count_reattacks(REFERENCE, [NoteEvent(0.5, 0.6, 61), NoteEvent(2.0, 2.5, 64)]) == 0  # other pitch, after
    # a second voice entering in unison, then a repeated note that two voices strike 10 ms apart
    unison = [NoteEvent(0.0, 2.0, 60), NoteEvent(1.0, 1.5, 60), NoteEvent(2.0, 3.0, 60), NoteEvent(2.01, 2.5, 60)]
    assert count_reattacks(unison, shifted(unison, -0.02)) == 0
    assert count_reattacks(unison, [*unison, NoteEvent(0.5, 0.6, 60), NoteEvent(2.5, 2.8, 60)]) == 2
    assert count_reattacks(REFERENCE[:1], [NoteEvent(0.593, 1.5, 60)]) == 0  # a frame late is still the first


def test_counts_agree_with_mir_evals_precision_recall_f1():
    rng = np.random.default_rng(1)
    onsets = rng.uniform(0, 9, 60)
    reference = [
        NoteEvent(t, t + rng.uniform(0.1, 1), int(p)) for t, p in zip(onsets, rng.integers(50, 60, 60), strict=True)
    ]
    estimate = [NoteEvent(e.onset_s + rng.normal(0, 0.04), e.offset_s + rng.normal(0, 0.1), e.pitch) for e in reference]
    estimate = [e for e in estimate if e.offset_s > e.onset_s > 0][:50]
    metrics = score(reference, estimate, TIMES).metrics()

    def as_mir_eval(events):
        intervals = np.array([(e.onset_s, e.offset_s) for e in events])
        return intervals, mir_eval.util.midi_to_hz(np.array([e.pitch for e in events]))

    for ratio, prefix in ((None, "note"), (0.2, "note_offset")):
        p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
            *as_mir_eval(reference), *as_mir_eval(estimate), onset_tolerance=0.05, offset_ratio=ratio
        )
        assert (metrics[f"{prefix}_precision"], metrics[f"{prefix}_recall"]) == pytest.approx((p, r))
        assert metrics[f"{prefix}_f1"] == pytest.approx(f)


def held_notes_with_dropouts(times: np.ndarray) -> tuple[np.ndarray, list[NoteEvent]]:
    """Probabilities of four held notes, each with two one-frame dips to 0.25 (so naive splits each in three)."""
    probabilities = np.full((len(times), NUM_NOTES), 0.05, dtype=np.float32)
    reference, hop = [], times[1] - times[0]
    for start, pitch in zip((10, 60, 110, 160), (60, 62, 64, 65), strict=True):
        column = probabilities[:, midi_to_index(pitch)]
        column[start : start + 30] = 0.9
        column[[start + 10, start + 20]] = 0.25
        reference.append(NoteEvent(times[start] - hop / 2, times[start + 29] + hop / 2, pitch))
    return probabilities, reference


def test_naive_reattacks_held_notes_and_hysteresis_does_not():
    times = sequential_centres(200 * WINDOW_SIZE) / SAMPLE_RATE
    probabilities, reference = held_notes_with_dropouts(times)
    naive = score(reference, decode("naive", probabilities, times), times).metrics()
    hysteresis = score(reference, decode("hysteresis", probabilities, times), times).metrics()
    assert naive["reattacks_per_note"] == 2.0 and naive["note_precision"] == pytest.approx(1 / 3)
    assert hysteresis["reattacks_per_note"] == 0.0 and hysteresis["note_f1"] == 1.0
    assert hysteresis["frame_f1"] == 1.0 > naive["frame_f1"]


def test_tuning_finds_thresholds_that_pass_the_dropouts():
    times = sequential_centres(200 * WINDOW_SIZE) / SAMPLE_RATE
    probabilities, reference = held_notes_with_dropouts(times)
    trials = tune_thresholds([probabilities], [reference], [times], "hysteresis", DecoderConfig(max_gap_s=0.0))
    best, metrics = trials[0]
    assert metrics["note_f1"] == 1.0 and best.off < 0.25
    assert len(trials) == 45 and [m["note_f1"] for _, m in trials] == sorted(
        (m["note_f1"] for _, m in trials), reverse=True
    )
    naive = tune_thresholds([probabilities], [reference], [times], "naive", grid=(0.5, 0.2))
    assert [config.threshold for config, _ in naive] == [0.2, 0.5]  # 0.2 passes the dropouts
    with pytest.raises(AmtError, match="not 'bogus'"):
        tune_thresholds([probabilities], [reference], [times], "bogus")


def test_tuning_the_onsets_decoder_finds_an_onset_threshold_below_weak_onset_peaks():
    times = sequential_centres(200 * WINDOW_SIZE) / SAMPLE_RATE
    probabilities, reference = held_notes_with_dropouts(times)
    onsets = np.zeros_like(probabilities)
    for note in reference:
        onsets[np.searchsorted(times, note.onset_s), note.pitch - 21] = 0.35  # an uncertain model's onset peaks
    config = DecoderConfig(start_without_onset=False)
    trials = tune_thresholds([probabilities], [reference], [times], "onsets", config, (0.2, 0.5), [onsets])
    best, metrics = trials[0]
    assert best.onset_threshold == 0.2 and metrics["note_f1"] > trials[-1][1]["note_f1"]
    assert len(trials) == 2 * 2 * len(MIN_NOTE_GRID)


# --- folders of real recordings ------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(data_dir) -> Path:
    return data_dir / "synth-tiny" / "recordings"


@pytest.fixture(scope="module")
def flat_folder(corpus, tmp_path_factory) -> Path:
    """The tiny corpus's test recordings as ID.wav beside ID.csv."""
    folder = tmp_path_factory.mktemp("flat")
    for recording in find_labelled_recordings(corpus):
        if recording.wav.parent.name == "test_data":
            shutil.copy(recording.wav, folder)
            shutil.copy(recording.csv, folder)
    return folder


def test_finds_recordings_in_both_layouts(corpus, flat_folder, tmp_path):
    ids = [r.id for r in find_labelled_recordings(corpus)]
    assert len(ids) == 8 and ids == sorted(ids, key=int)
    assert [r.id for r in find_labelled_recordings(flat_folder)] == [
        r.id for r in find_labelled_recordings(corpus) if r.wav.parent.name == "test_data"
    ]
    shutil.copytree(flat_folder, tmp_path / "broken")
    next((tmp_path / "broken").glob("*.csv")).unlink()
    with pytest.raises(AmtError, match="no label file"):
        find_labelled_recordings(tmp_path / "broken")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AmtError, match="no recordings"):
        find_labelled_recordings(tmp_path / "empty")


def test_evaluate_a_model_in_both_layouts(checkpoint, corpus, flat_folder):  # noqa: F811
    run = ModelRun(load_model(checkpoint), decoders=("naive", "hysteresis"))
    musicnet_layout = evaluate(corpus, run)
    flat = evaluate(flat_folder, run)
    assert set(musicnet_layout["systems"]) == {"naive", "hysteresis"}
    for name, rows in flat["systems"].items():
        assert set(rows) == {*(r.id for r in find_labelled_recordings(flat_folder)), POOLED}
        for rid, row in rows.items():
            if rid != POOLED:
                assert row == musicnet_layout["systems"][name][rid]
    pooled = musicnet_layout["systems"]["hysteresis"][POOLED]
    assert 0 < pooled["frame_f1"] <= 1 and 0 < pooled["average_precision"] <= 1
    assert pooled["reattacks_per_note"] <= musicnet_layout["systems"]["naive"][POOLED]["reattacks_per_note"]


def write_predictions(corpus: Path, folder: Path, transform=lambda events: events) -> Path:
    folder.mkdir()
    for recording in find_labelled_recordings(corpus):
        write_note_csv(
            transform(events_from_musicnet(read_musicnet_csv(recording.csv))), folder / f"{recording.id}.csv"
        )
    return folder


def test_evaluate_predictions_from_any_system(corpus, tmp_path, capsys):
    perfect = write_predictions(corpus, tmp_path / "perfect")
    late = write_predictions(corpus, tmp_path / "late", lambda events: shifted(events, 0.07))
    args = ["evaluate", str(corpus), "--predictions", str(perfect), "--predictions", str(late)]
    assert main([*args, "--json", str(tmp_path / "m.json"), "--csv", str(tmp_path / "m.csv")]) == 0
    printed = capsys.readouterr().out
    assert "perfect" in printed and "late" in printed and "pooled" in printed
    results = json.loads((tmp_path / "m.json").read_text())
    best, worst = results["systems"]["perfect"][POOLED], results["systems"]["late"][POOLED]
    assert best["note_f1"] == best["note_offset_f1"] == 1.0 and best["frame_f1"] > 0.999
    assert best["reattacks_per_note"] == 0.0 and "average_precision" not in best
    assert worst["note_f1"] < 0.05  # a few land on another note of the same pitch
    with open(tmp_path / "m.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * (8 + 1) and {row["system"] for row in rows} == {"perfect", "late"}
    next(perfect.glob("*.csv")).unlink()
    assert main(["evaluate", str(corpus), "--predictions", str(perfect)]) == 2
    assert "no note csv for recording(s)" in capsys.readouterr().err


def test_evaluate_and_tune_from_the_command_line(checkpoint, flat_folder, tmp_path, capsys):  # noqa: F811
    args = ["evaluate", str(flat_folder), "--ckpt", str(checkpoint), "--decoder", "naive", "--decoder", "hysteresis"]
    assert main([*args, "--per-recording", "--json", str(tmp_path / "e.json")]) == 0
    printed = capsys.readouterr().out
    assert "naive" in printed and "hysteresis" in printed and "re-attacks/note" in printed
    assert set(json.loads((tmp_path / "e.json").read_text())["systems"]) == {"naive", "hysteresis"}
    tune = [
        "tune",
        str(flat_folder),
        "--ckpt",
        str(checkpoint),
        "--grid",
        "0.3,0.6",
        "--json",
        str(tmp_path / "t.json"),
    ]
    assert main(tune) == 0
    assert "best: --on" in capsys.readouterr().out
    assert len(json.loads((tmp_path / "t.json").read_text())) == 3


def test_tuned_settings_saved_in_a_checkpoint_become_its_defaults(checkpoint, flat_folder, tmp_path, capsys):  # noqa: F811
    assert main(["tune", str(flat_folder), "--save"]) == 2
    assert "name it with --ckpt" in capsys.readouterr().err
    ckpt = tmp_path / "tuned.ckpt"
    shutil.copy(checkpoint, ckpt)
    shutil.copy(checkpoint.parent.parent / ".hydra" / "config.yaml", ckpt.with_suffix(".yaml"))
    assert checkpoint_decoder_config(ckpt) == DecoderConfig()
    tune = ["tune", str(flat_folder), "--ckpt", str(ckpt), "--grid", "0.2,0.7", "--save"]
    tune += ["--json", str(tmp_path / "t.json")]
    assert main(tune) == 0
    best = json.loads((tmp_path / "t.json").read_text())[0]
    saved = checkpoint_decoder_config(ckpt)
    assert (saved.on, saved.off) == (best["on"], best["off"]) != (DecoderConfig().on, DecoderConfig().off)
    assert torch.equal(load_model(ckpt).head.weight, load_model(checkpoint).head.weight)
