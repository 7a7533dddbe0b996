"""amt's models side by side with basic-pitch on the same recordings: one table, one command.

    python scripts/compare.py --recordings data/synth-mini/recordings --split test \\
        --model cnn_multi=amt/weights/default.ckpt:naive,hysteresis \\
        --model context_gru=outputs/.../best.ckpt:onsets --out outputs/compare/in-domain

Every system writes a note csv per recording (amt's through ``amt.transcribe.transcribe_file``,
file to MIDI and csv, timed per file after the model is loaded; basic-pitch through
scripts/basic_pitch_runner.py in its own virtual environment, timed per file after a warm-up), and
one scorer rates them all (``amt.evaluate``, predictions mode): frame F1 on a 1,024-sample grid,
note F1 onset-only (50 ms) and with offsets (ratio 0.2), re-attacks per reference note, and the
real-time factor (audio seconds per wall-clock second) on this machine.

basic-pitch is installed apart from the project (its package pins an old TensorFlow; the ONNX model
needs none), into ``.venv-basic-pitch`` (``make basic-pitch``); ``--no-basic-pitch`` leaves it out.
This is a script, not a test and not a dependency of the package.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import soundfile

from amt.checkpoint import CNN_MULTI_CHECKPOINT, DEFAULT_CHECKPOINT, load
from amt.data.recordings import find_recordings
from amt.evaluate import POOLED, evaluate
from amt.grid import CONTEXT_GRID
from amt.transcribe import Outputs, TranscribeSettings, transcribe_file

REPO = Path(__file__).resolve().parent.parent
BASIC_PITCH_PYTHON = REPO / ".venv-basic-pitch" / "bin" / "python"
FRAME_GRID = CONTEXT_GRID
"""Every system is scored on the context models' grid (23 ms frames); window models run on it too."""
COLUMNS = {
    "frame_f1": "frame F1",
    "note_f1": "note F1 (onsets)",
    "note_offset_f1": "note F1 (with offsets)",
    "reattacks_per_note": "re-attacks / note",
}


def parse_model(text: str) -> tuple[str, Path, list[str]]:
    """``NAME=CKPT:decoder,decoder`` → (name, checkpoint, decoders)."""
    name, _, rest = text.partition("=")
    ckpt, _, decoders = rest.rpartition(":")
    if not name or not ckpt or not decoders:
        raise argparse.ArgumentTypeError(f"expected NAME=CKPT:DECODER[,DECODER], got {text!r}")
    return name, Path(ckpt), decoders.split(",")


def flat_view(recordings: list, folder: Path) -> Path:
    """``ID.wav`` + ``ID.csv`` links to one split's recordings, the layout ``amt.evaluate`` reads."""
    folder.mkdir(parents=True, exist_ok=True)
    for recording in recordings:
        for source, suffix in ((recording.wav, ".wav"), (recording.csv, ".csv")):
            link = folder / f"{recording.id}{suffix}"
            link.unlink(missing_ok=True)
            link.symlink_to(source.resolve())
    return folder


def run_amt(name: str, ckpt: Path, decoder: str, recordings: list, out: Path) -> float:
    """Transcribe every recording to OUT/ID.notes.csv (and .mid); returns the seconds spent."""
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = load(ckpt)
    # every model with its tuned decoder settings (amt tune --save)
    grid = checkpoint.grid(FRAME_GRID.hop)
    settings = TranscribeSettings(grid=grid, decoder=decoder, decoder_config=checkpoint.decoder_config)
    seconds = 0.0
    for recording in recordings:
        start = time.perf_counter()
        transcribe_file(recording.wav, Outputs(out / f"{recording.id}.mid"), checkpoint.model, settings)
        seconds += time.perf_counter() - start
    print(f"{name} ({decoder}): {len(recordings)} recordings in {seconds:.1f} s", flush=True)
    return seconds


def run_basic_pitch(recordings: list, out: Path) -> float:
    if not BASIC_PITCH_PYTHON.is_file():
        sys.exit(f"compare: {BASIC_PITCH_PYTHON} is missing: run `make basic-pitch`, or pass --no-basic-pitch")
    command = [str(BASIC_PITCH_PYTHON), str(REPO / "scripts" / "basic_pitch_runner.py"), str(out)]
    subprocess.run(
        command + [str(r.wav) for r in recordings], check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    )
    seconds = sum(json.loads((out / "timings.json").read_text()).values())
    print(f"basic-pitch: {len(recordings)} recordings in {seconds:.1f} s", flush=True)
    return seconds


def markdown(rows: list[dict], title: str) -> str:
    lines = [f"# {title}", "", "| system | " + " | ".join(COLUMNS.values()) + " | real-time factor |"]
    lines.append("| --- " * (len(COLUMNS) + 2) + "|")
    for row in rows:
        cells = [f"{row[key]:.3f}" for key in COLUMNS]
        lines.append(f"| {row['system']} | " + " | ".join(cells) + f" | {row['real_time_factor']:.0f}× |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recordings", type=Path, required=True, help="MusicNet-layout folder")
    parser.add_argument("--split", default="test")
    parser.add_argument(
        "--model",
        type=parse_model,
        action="append",
        help="NAME=CKPT:DECODERS, repeatable (default: the bundled default model with its onsets decoder and "
        "the report's cnn_multi with hysteresis)",
    )
    parser.add_argument("--no-basic-pitch", action="store_true")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)

    recordings = find_recordings(args.recordings, args.split)
    audio_s = sum(soundfile.info(r.wav).duration for r in recordings)
    seconds: dict[str, float] = {}
    models = args.model or [
        ("default", DEFAULT_CHECKPOINT, ["onsets"]),
        ("cnn_multi", CNN_MULTI_CHECKPOINT, ["hysteresis"]),
    ]
    for name, ckpt, decoders in models:
        for decoder in decoders:
            system = f"{name} ({decoder})"
            seconds[system] = run_amt(name, ckpt, decoder, recordings, args.out / "systems" / system)
    if not args.no_basic_pitch:
        seconds["basic-pitch"] = run_basic_pitch(recordings, args.out / "systems" / "basic-pitch")

    view = flat_view(recordings, args.out / "recordings")
    results = evaluate(view, predictions=[args.out / "systems" / system for system in seconds], grid=FRAME_GRID)
    rows = [
        {
            "system": system,
            **{k: results["systems"][system][POOLED][k] for k in COLUMNS},
            "real_time_factor": audio_s / seconds[system],
        }
        for system in seconds
    ]
    title = args.title or f"{args.recordings} ({args.split}: {len(recordings)} recordings, {audio_s / 60:.1f} min)"
    (args.out / "comparison.json").write_text(json.dumps({"title": title, "rows": rows, "results": results}, indent=1))
    (args.out / "comparison.md").write_text(markdown(rows, title))
    print(markdown(rows, title))


if __name__ == "__main__":
    main()
