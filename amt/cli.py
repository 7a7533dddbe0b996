"""The ``amt`` command: data preparation and baselines (training is ``python train.py``)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from amt.errors import AmtError

console = Console()


def _data_synth(args: argparse.Namespace) -> None:
    from amt.data.synth import SynthCorpus

    windows = SynthCorpus(args.out, preset=args.preset, seed=args.seed, soundfont=args.soundfont).prepare()
    console.print(f"corpus ready: recordings in {Path(args.out) / 'recordings'}, windows in {windows}")
    _print_statistics(windows)


def _data_musicnet(args: argparse.Namespace) -> None:
    from amt.data.musicnet import MusicNetWindows

    windows = MusicNetWindows(args.musicnet, args.out).prepare()
    console.print(f"mini-MusicNet-format windows in {windows}")
    _print_statistics(windows)


def _data_minimusicnet(args: argparse.Namespace) -> None:
    from amt.data.minimusicnet import MiniMusicNet

    path = MiniMusicNet(args.path, download=args.download).prepare()
    console.print(f"mini-MusicNet checked: {path}")
    _print_statistics(path)


def _data_stats(args: argparse.Namespace) -> None:
    _print_statistics(Path(args.path))


def _print_statistics(windows_dir: Path) -> None:
    """One row per split: the label statistics used to compare a corpus with mini-MusicNet."""
    from amt.data.minimusicnet import SPLITS, load_split
    from amt.data.musicnet import window_statistics
    from amt.notes import note_name

    table = Table(title=f"windows in {windows_dir}")
    for column in ("split", "windows", "notes/window", "max notes", "empty", "pitch range", "outside A0..F7"):
        table.add_column(column, justify="right")
    for split in SPLITS:
        _, labels = load_split(windows_dir, split)
        stats = window_statistics(np.asarray(labels))
        table.add_row(
            split,
            f"{stats['windows']:,}",
            f"{stats['mean_notes_per_window']:.2f}",
            str(stats["max_notes_per_window"]),
            f"{stats['empty_share']:.1%}",
            f"{note_name(stats['lowest_pitch'])}..{note_name(stats['highest_pitch'])}"
            if stats["lowest_pitch"] is not None
            else "-",
            str(stats["outside_label_space"]),
        )
    console.print(table)


def _baseline_ridge(args: argparse.Namespace) -> None:
    from amt.baselines import ridge_baseline

    results = ridge_baseline(args.path, bins=args.bins, ridge=args.ridge)
    table = Table(title=f"ridge regression on |rfft| (bins={args.bins}, λ={args.ridge:g}), micro AP")
    for split in ("train", "valid", "test"):
        table.add_column(split, justify="right")
    table.add_row(*(f"{results[f'{split}/ap']:.3f}" for split in ("train", "valid", "test")))
    console.print(table)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="amt", description="Automatic music transcription.")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="build, download or check data sets").add_subparsers(
        dest="source", required=True
    )
    synth = data.add_parser("synth", help="build the offline MusicNet-like corpus (music21 scores + FluidSynth)")
    synth.add_argument("--preset", default="mini", help="corpus size: tiny (tests) or mini (mini-MusicNet size)")
    synth.add_argument("--out", required=True, type=Path, help="corpus folder (recordings/ and windows/ inside)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--soundfont", type=Path, default=None, help="General MIDI .sf2 (default: system GM font)")
    synth.set_defaults(run=_data_synth)

    musicnet = data.add_parser("musicnet", help="mini-MusicNet-format windows from a MusicNet copy")
    musicnet.add_argument(
        "--musicnet", required=True, type=Path, help="MusicNet root (train_data/, train_labels/, ...)"
    )
    musicnet.add_argument("--out", required=True, type=Path)
    musicnet.set_defaults(run=_data_musicnet)

    mini = data.add_parser("minimusicnet", help="check (or download) the published mini-MusicNet files")
    mini.add_argument("--path", required=True, type=Path)
    mini.add_argument("--download", action="store_true", help="download the files first when they are missing")
    mini.set_defaults(run=_data_minimusicnet)

    stats = data.add_parser("stats", help="label statistics of a folder of windows")
    stats.add_argument("path", type=Path)
    stats.set_defaults(run=_data_stats)

    baseline = commands.add_parser("baseline", help="reference baselines").add_subparsers(dest="name", required=True)
    ridge = baseline.add_parser("ridge", help="ridge regression on FFT features (mini-MusicNet README)")
    ridge.add_argument("path", type=Path, help="folder of windows")
    ridge.add_argument("--bins", type=int, default=2049)
    ridge.add_argument("--ridge", type=float, default=1e-3)
    ridge.set_defaults(run=_baseline_ridge)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run: Callable[[argparse.Namespace], None] = args.run
    try:
        run(args)
    except AmtError as error:
        print(f"amt: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
