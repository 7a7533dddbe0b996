"""amt/data/statistics.py and ``amt data describe``: what corpora hold, side by side with published figures."""

import numpy as np

from amt.cli import main
from amt.data.statistics import MAESTRO, comparison_rows, describe
from amt.grid import SAMPLE_RATE
from amt.labels import MusicNetLabels, write_musicnet_csv


def test_a_hand_made_folder_reads_as_counted(tmp_path):
    from amt.audio import save_audio

    save_audio(tmp_path / "a.wav", np.zeros(10 * SAMPLE_RATE, dtype=np.float32))
    rows = [(round(t * SAMPLE_RATE), round((t + 0.5) * SAMPLE_RATE), 1, 60 + k, 0.0, 1.0, "Quarter")
            for t in (1.0, 2.0) for k in (0, 4, 7)]  # fmt: skip
    rows.append((round(9.0 * SAMPLE_RATE), round(9.25 * SAMPLE_RATE), 1, 108, 0.0, 1.0, "Quarter"))
    write_musicnet_csv(tmp_path / "a.csv", MusicNetLabels.from_rows(rows))
    stats = describe(tmp_path)
    assert stats["recordings"] == "1" and stats["notes"] == "7" and stats["notes/s mean"] == "0.7"
    assert stats["pitch range"] == "C4–C8" and stats["polyphony mean / p95 / max"].endswith("/ 3")
    assert stats["octaves 0–8 (% of notes)"].split() == ["0", "0", "0", "0", "86", "0", "0", "0", "14"]
    assert stats["duration s p5 / p50 / p95"] == "0.33 / 0.50 / 0.50"


def test_amt_s_corpus_json_adds_sources_timbres_and_rooms(data_dir):
    stats = describe(data_dir / "synth-tiny" / "recordings", "train")
    assert stats["recordings"] == "4" and stats["sources"].startswith("chorale")
    assert stats["simulated rooms"] == "none (FluidSynth's reverb)"
    assert stats["velocity p5–p50–p95"].count("–") == 2 and "of recordings" in stats["pedal down (share of time)"]


def test_the_table_puts_corpora_and_published_figures_side_by_side(data_dir, capsys):
    rows = comparison_rows({"mine": {"hours": "1.0", "notes": "5"}}, {"MAESTRO": MAESTRO})
    assert rows[0] == ["hours", "1.0", "172.3"] and rows[1] == ["notes", "5", "6.18 M"]
    assert main(["data", "describe", str(data_dir / "synth-tiny" / "recordings"), "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert "MAESTRO (published)" in out and "notes/s mean" in out and "172.3" in out
