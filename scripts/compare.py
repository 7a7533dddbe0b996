"""amt's models side by side with published transcribers on the same recordings: one table, one command.

    python scripts/compare.py --recordings data/synth-varied/recordings --split test --out outputs/compare/varied

Every system writes a note csv per recording: amt's through ``amt.transcribe.transcribe_file`` (file
to MIDI and csv, timed per file after the model is loaded; ``--engine`` as for ``amt transcribe``),
the peers through scripts/peer_runner.py in their own virtual environments (timed per file after a
warm-up): basic-pitch (``make basic-pitch``), transkun and harmonica-amt (``make transkun``, ``make
harmonica``). One scorer rates them all (``amt.evaluate``, predictions mode): frame F1 on the context
models' 23 ms grid, note F1 onset-only (50 ms), with offsets (ratio 0.2) and with velocity, re-attacks
per reference note, and the real-time factor (audio seconds per wall-clock second) on this machine;
``--diagnostics`` adds where each system loses notes, where the notes it finds end, and what its false
alarms mistook.

A corpus whose corpus.json says which recordings are solo piano is scored in two blocks, piano and
ensemble. Peers' outputs are cached under ``OUT/systems`` with each recording's audio checksum, so a
rerun transcribes only recordings that are new or changed. The peers are comparisons only: never
dependencies of amt, never teachers. This is a script, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import soundfile

from amt.bundled import CNN_MULTI_CHECKPOINT, CONTEXT_DEFAULT_CHECKPOINT, DEFAULT_CHECKPOINT
from amt.checkpoint import load
from amt.data.recordings import Recording, corpus_record, find_recordings
from amt.engine import model_for
from amt.evaluate import POOLED, evaluate
from amt.grid import CONTEXT_GRID
from amt.transcribe import Outputs, TranscribeSettings, transcribe_file

REPO = Path(__file__).resolve().parent.parent
PEERS = {
    "basic-pitch": REPO / ".venv-basic-pitch",
    "transkun": REPO / ".venv-transkun",
    "harmonica": REPO / ".venv-harmonica",
}
"""Published transcribers and the virtual environments ``make basic-pitch|transkun|harmonica`` builds."""
FRAME_GRID = CONTEXT_GRID
"""Every system is scored on the context models' grid (23 ms frames); window models run on it too."""
COLUMNS = {
    "frame_f1": "frame F1",
    "note_f1": "note F1 (onsets)",
    "note_offset_f1": "note F1 (with offsets)",
    "note_velocity_f1": "note F1 (with velocity)",
    "reattacks_per_note": "re-attacks / note",
}


def parse_model(text: str) -> tuple[str, Path, list[str]]:
    """``NAME=CKPT:decoder,decoder`` → (name, checkpoint, decoders)."""
    name, _, rest = text.partition("=")
    ckpt, _, decoders = rest.rpartition(":")
    if not name or not ckpt or not decoders:
        raise argparse.ArgumentTypeError(f"expected NAME=CKPT:DECODER[,DECODER], got {text!r}")
    return name, Path(ckpt), decoders.split(",")


def recording_sets(root: Path, split: str) -> dict[str, list[Recording]]:
    """The split's recordings, in a piano block and an ensemble block when the corpus.json beside them
    says which are solo piano; else in one block."""
    recordings = find_recordings(root, split)
    record = corpus_record(root)
    if record is None:
        return {split: recordings}
    ensembles = {e["id"]: e.get("ensemble") for e in record["recordings"]}
    sets = {
        "piano": [r for r in recordings if ensembles.get(r.id) == "solo_piano"],
        "ensemble": [r for r in recordings if ensembles.get(r.id) not in (None, "solo_piano")],
    }
    return {name: chosen for name, chosen in sets.items() if chosen}


def flat_view(recordings: list[Recording], folder: Path) -> Path:
    """``ID.<audio>`` + ``ID.csv`` links to the recordings, the layout ``amt.evaluate`` reads."""
    folder.mkdir(parents=True, exist_ok=True)
    for recording in recordings:
        for source in (recording.wav, recording.csv):
            link = folder / f"{recording.id}{source.suffix}"
            link.unlink(missing_ok=True)
            link.symlink_to(source.resolve())
    return folder


def run_amt(
    name: str, ckpt: Path, decoder: str, recordings: list[Recording], out: Path, engine: str = "auto"
) -> dict[str, float]:
    """Transcribe every recording to OUT/ID.notes.csv (and .mid) as ``amt transcribe --engine ENGINE``
    does; returns seconds per recording (the engine's one-off export, if any, is not timed)."""
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = load(ckpt)
    model = model_for(checkpoint, engine)
    grid = checkpoint.grid(FRAME_GRID.hop)  # every model with its tuned decoder settings (amt tune --save)
    settings = TranscribeSettings(grid=grid, decoder=decoder, decoder_config=checkpoint.decoder_config)
    seconds = {}
    for recording in recordings:
        start = time.perf_counter()
        transcribe_file(recording.wav, Outputs(out / f"{recording.id}.mid"), model, settings)
        seconds[recording.id] = time.perf_counter() - start
    print(f"{name} ({decoder}): {len(recordings)} recordings in {sum(seconds.values()):.1f} s", flush=True)
    return seconds


def run_peer(peer: str, recordings: list[Recording], out: Path) -> dict[str, float]:
    """The peer's note csvs for every recording in OUT (``scripts/peer_runner.py`` transcribes only
    those missing or whose audio changed since); returns seconds per recording."""
    python = PEERS[peer] / "bin" / "python"
    command = [str(python), str(REPO / "scripts" / "peer_runner.py"), peer, str(out), *(str(r.wav) for r in recordings)]
    subprocess.run(command, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    timings = json.loads((out / "timings.json").read_text())
    return {r.id: timings[r.id] for r in recordings}


def markdown(blocks: dict[str, list[dict]], title: str) -> str:
    lines = [f"# {title}", "", "| set | system | " + " | ".join(COLUMNS.values()) + " | real-time factor |"]
    lines.append("| --- " * (len(COLUMNS) + 3) + "|")
    for name, rows in blocks.items():
        for row in rows:
            cells = ["–" if row[key] is None else f"{row[key]:.3f}" for key in COLUMNS]
            lines.append(f"| {name} | {row['system']} | " + " | ".join(cells) + f" | {row['real_time_factor']:.1f}× |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recordings", type=Path, required=True, help="MusicNet-layout folder")
    parser.add_argument("--split", default="test")
    parser.add_argument(
        "--model",
        type=parse_model,
        action="append",
        help="NAME=CKPT:DECODERS, repeatable (default: the bundled default and first-generation default models "
        "with their onsets decoder, and the report's cnn_multi with hysteresis)",
    )
    parser.add_argument(
        "--peers",
        default=",".join(PEERS),
        help=f"published transcribers to run, comma-separated (default: {','.join(PEERS)}; '' for none)",
    )
    parser.add_argument(
        "--diagnostics",
        action="store_true",
        help="where each system loses notes, where found notes end, what false alarms mistook, per set",
    )
    parser.add_argument("--engine", choices=("auto", "torch", "onnx"), default="auto", help="what runs amt's models")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)
    peers = [peer for peer in args.peers.split(",") if peer]
    for peer in peers:
        if peer not in PEERS:
            parser.error(f"unknown peer {peer!r} (choose from: {', '.join(PEERS)})")
        if not (PEERS[peer] / "bin" / "python").is_file():
            parser.error(f"{PEERS[peer]} is missing: run `make {peer}`, or leave it out with --peers")

    sets = recording_sets(args.recordings, args.split)
    recordings = [r for chosen in sets.values() for r in chosen]
    models = args.model or [
        ("default", DEFAULT_CHECKPOINT, ["onsets"]),
        ("context_default", CONTEXT_DEFAULT_CHECKPOINT, ["onsets"]),
        ("cnn_multi", CNN_MULTI_CHECKPOINT, ["hysteresis"]),
    ]
    seconds: dict[str, dict[str, float]] = {}
    for name, ckpt, decoders in models:
        for decoder in decoders:
            system = f"{name} ({decoder})"
            seconds[system] = run_amt(name, ckpt, decoder, recordings, args.out / "systems" / system, args.engine)
    for peer in peers:
        seconds[peer] = run_peer(peer, recordings, args.out / "systems" / peer)

    blocks, results = {}, {}
    for set_name, chosen in sets.items():
        audio_s = sum(soundfile.info(r.wav).duration for r in chosen)
        view = flat_view(chosen, args.out / "recordings" / set_name)
        folders = [args.out / "systems" / system for system in seconds]
        results[set_name] = evaluate(view, predictions=folders, grid=FRAME_GRID, diagnose=args.diagnostics)
        blocks[set_name] = [
            {
                "system": system,
                **{k: results[set_name]["systems"][system][POOLED][k] for k in COLUMNS},
                "real_time_factor": audio_s / sum(seconds[system][r.id] for r in chosen),
            }
            for system in seconds
        ]
        if args.diagnostics:
            from rich.console import Console

            from amt.evaluate import diagnostics_table, endings_table, false_alarms_table

            console = Console(width=160)
            for system, table in results[set_name]["diagnostics"].items():
                console.print(diagnostics_table(f"{set_name}, {system}", table))
            console.print(endings_table(set_name, results[set_name]["endings"]))
            console.print(false_alarms_table(set_name, results[set_name]["false_alarms"]))
    counts = ", ".join(f"{name} {len(chosen)}" for name, chosen in sets.items())
    title = args.title or f"{args.recordings} ({args.split}: {counts} recordings)"
    report = {"title": title, "blocks": blocks, "results": results}
    (args.out / "comparison.json").write_text(json.dumps(report, indent=1))
    (args.out / "comparison.md").write_text(markdown(blocks, title))
    print(markdown(blocks, title))


if __name__ == "__main__":
    main()
