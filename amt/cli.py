"""The ``amt`` command: data preparation, baselines, transcription and evaluation (training is ``python train.py``)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from amt.errors import AmtError

if TYPE_CHECKING:
    from amt.evaluate import ModelRun
    from amt.notes import DecoderConfig

console = Console()


def _data_synth(args: argparse.Namespace) -> None:
    from amt.data.synth import SynthCorpus

    windows = SynthCorpus(args.out, preset=args.preset, seed=args.seed, soundfont=args.soundfont).prepare()
    console.print(f"corpus ready: recordings in {Path(args.out) / 'recordings'}, windows in {windows}")
    _print_statistics(windows)


def _data_rerender(args: argparse.Namespace) -> None:
    from amt.data.synth import rerender_split

    out = rerender_split(args.preset, args.seed, args.split, args.soundfont, args.out)
    console.print(f"{args.split} split re-rendered with {args.soundfont} in an unseen hall: {out}")


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


def _data_spectra(args: argparse.Namespace) -> None:
    from amt.data.datamodule import export_spectra

    out = export_spectra(args.path, args.out, args.bins)
    size = sum(file.stat().st_size for file in out.glob("*.npy"))
    console.print(f"spectra folder ready: {out} ({size / 1e6:.1f} MB); train on it with data=spectra data.path={out}")


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


def _progress_bar() -> Progress | nullcontext:
    """A transient progress bar on stderr for long recordings; nothing when stderr is not a terminal."""
    return Progress(console=Console(stderr=True), transient=True) if sys.stderr.isatty() else nullcontext()


def _decoder_config(args: argparse.Namespace) -> DecoderConfig:
    """The decoder options given, over the settings saved with the checkpoint (``amt tune --save``)."""
    from amt.transcribe import checkpoint_decoder_config

    given = {name: getattr(args, name) for name in DECODER_OPTIONS if getattr(args, name) is not None}
    return replace(checkpoint_decoder_config(args.ckpt), **given)


def _model_run(args: argparse.Namespace, decoders: Sequence[str] | None) -> ModelRun:
    """The model of ``--ckpt`` with ``decoders`` (None: the model's default decoder)."""
    from amt.evaluate import ModelRun
    from amt.transcribe import check_decoders, default_decoder, load_model, resolve_device

    device = str(resolve_device(args.device))
    model = load_model(args.ckpt)
    decoders = decoders or [default_decoder(model)]
    check_decoders(model, decoders)
    return ModelRun(model, tuple(decoders), _decoder_config(args), args.batch_size, device)


def _transcribe(args: argparse.Namespace) -> None:
    from amt.evaluate import score
    from amt.transcribe import (
        TranscribeSettings,
        check_decoders,
        default_decoder,
        load_model,
        output_paths,
        resolve_device,
        transcribe_file,
    )

    if args.labels is not None and len(args.inputs) != 1:
        raise AmtError("--labels goes with one input recording")
    device = str(resolve_device(args.device))
    outputs = output_paths(args.inputs, args.out)
    model = load_model(args.ckpt)
    settings = TranscribeSettings(
        hop=args.hop,
        batch_size=args.batch_size,
        device=device,
        decoder=args.decoder or default_decoder(model),
        decoder_config=_decoder_config(args),
        plot=args.plot or args.labels is not None,
    )
    check_decoders(model, [settings.decoder])
    failed = 0
    with _progress_bar() as progress:
        for audio, out in zip(args.inputs, outputs, strict=True):
            try:
                result = transcribe_file(audio, out, model, settings, args.labels, progress)
            except AmtError as error:
                print(f"amt: error: {error}", file=sys.stderr)
                failed += 1
                continue
            written = [out.midi, out.csv] + ([out.png] if settings.plot else [])
            console.print(f"{audio}: {len(result.events)} notes → {', '.join(map(str, written))}", soft_wrap=True)
            if result.reference is not None:
                metrics = score(result.reference, result.events, result.frame_times).metrics()
                console.print(
                    f"  against {args.labels}: note F1 {metrics['note_f1']:.3f} (with offsets "
                    f"{metrics['note_offset_f1']:.3f}), frame F1 {metrics['frame_f1']:.3f}, "
                    f"re-attacks/note {metrics['reattacks_per_note']:.3f}",
                    soft_wrap=True,
                )
    if failed:
        raise AmtError(f"{failed} of {len(args.inputs)} inputs failed")


def _print_wide(table: Table) -> None:
    """Print a table whole: into a file or pipe at its natural width instead of squeezed into 80 columns."""
    if console.is_terminal:
        console.print(table)
    else:
        Console(width=console.measure(table, options=console.options.update_width(10_000)).maximum).print(table)


def _evaluate(args: argparse.Namespace) -> None:
    from amt.evaluate import evaluate, results_table, write_csv, write_json

    run = _model_run(args, args.decoder) if args.ckpt or not args.predictions else None
    with _progress_bar() as progress:
        results = evaluate(args.path, run, args.predictions or (), args.hop, progress, args.split)
    _print_wide(results_table(results, per_recording=args.per_recording))
    if args.json:
        write_json(results, args.json)
    if args.csv:
        write_csv(results, args.csv)


def _tune(args: argparse.Namespace) -> None:
    from amt.evaluate import THRESHOLD_GRID, TUNED, trial_records, tune, tuning_table, write_json
    from amt.transcribe import save_decoder_config

    if args.save and args.ckpt is None:
        raise AmtError("--save writes into the checkpoint: name it with --ckpt")

    run = _model_run(args, [args.decoder] if args.decoder else None)
    decoder = run.decoders[0]
    with _progress_bar() as progress:
        trials = tune(args.path, run, args.hop, decoder, args.grid or THRESHOLD_GRID, progress, args.split)
    _print_wide(tuning_table(trials, decoder, f"{decoder} decoder thresholds on {args.path}", args.top))
    names = TUNED[decoder]
    console.print("best: " + " ".join(f"--{name.replace('_', '-')} {getattr(trials[0][0], name):g}" for name in names))
    if args.json:
        write_json(trial_records(trials), args.json)
    if args.save:
        save_decoder_config(args.ckpt, trials[0][0])
        console.print(f"saved in {args.ckpt}: transcribe, evaluate and tune now start from these settings")


DECODER_OPTIONS = ("threshold", "on", "off", "max_gap_s", "min_note_s", "onset_threshold")


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a probability in [0, 1), got {text}")
    return value


def _grid(text: str) -> tuple[float, ...]:
    try:
        return tuple(_probability(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated probabilities, got {text!r}") from None


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", type=Path, default=None, help="train.py checkpoint (default: the bundled model)")
    parser.add_argument(
        "--hop",
        type=int,
        default=4096,
        help="samples between window centres for window models (default 4096); context models use their own",
    )
    parser.add_argument("--batch-size", type=int, default=1024, help="windows per forward pass")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")


def _add_decoder_options(parser: argparse.ArgumentParser) -> None:
    """Decoder thresholds; a value not given keeps DecoderConfig's default."""
    from amt.notes import DecoderConfig

    default = DecoderConfig()
    group = parser.add_argument_group("decoder options")
    group.add_argument("--threshold", type=_probability, help=f"naive: frame threshold ({default.threshold:g})")
    group.add_argument("--on", type=_probability, help=f"a note starts above this probability ({default.on:g})")
    group.add_argument("--off", type=_probability, help=f"a note goes on above this probability ({default.off:g})")
    group.add_argument(
        "--max-gap-s", type=float, help=f"bridge dips shorter than this, seconds ({default.max_gap_s:g})"
    )
    group.add_argument(
        "--min-note-s", type=float, help=f"drop notes shorter than this, seconds ({default.min_note_s:g})"
    )
    group.add_argument(
        "--onset-threshold", type=_probability, help=f"onsets: onset peak threshold ({default.onset_threshold:g})"
    )


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

    rerender = data.add_parser(
        "rerender", help="one split of the corpus rendered with another soundfont, in a hall training never heard"
    )
    rerender.add_argument("--preset", default="mini")
    rerender.add_argument("--seed", type=int, default=0)
    rerender.add_argument("--split", default="test")
    rerender.add_argument("--soundfont", required=True, type=Path, help="a General MIDI .sf2/.sf3 not used in training")
    rerender.add_argument("--out", required=True, type=Path, help="folder for SPLIT_data/ and SPLIT_labels/")
    rerender.set_defaults(run=_data_rerender)

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

    spectra = data.add_parser("spectra", help="copy a folder of windows as spectra and labels only (a spectra folder)")
    spectra.add_argument("path", type=Path, help="folder of windows")
    spectra.add_argument("--bins", type=int, required=True, help="spectrum bins the model takes (model.bins)")
    spectra.add_argument("--out", required=True, type=Path)
    spectra.set_defaults(run=_data_spectra)

    stats = data.add_parser("stats", help="label statistics of a folder of windows")
    stats.add_argument("path", type=Path)
    stats.set_defaults(run=_data_stats)

    baseline = commands.add_parser("baseline", help="reference baselines").add_subparsers(dest="name", required=True)
    ridge = baseline.add_parser("ridge", help="ridge regression on FFT features (mini-MusicNet README)")
    ridge.add_argument("path", type=Path, help="folder of windows")
    ridge.add_argument("--bins", type=int, default=2049)
    ridge.add_argument("--ridge", type=float, default=1e-3)
    ridge.set_defaults(run=_baseline_ridge)

    transcribe = commands.add_parser("transcribe", help="transcribe recordings to MIDI, note csv and piano roll")
    transcribe.add_argument("inputs", nargs="+", type=Path, help="audio files (wav, flac, ogg; any rate)")
    transcribe.add_argument("-o", "--out", required=True, type=Path, help="output folder, or FILE.mid for one input")
    transcribe.add_argument(
        "--decoder",
        choices=("hysteresis", "naive", "onsets"),
        help="default: onsets for context models, else hysteresis",
    )
    transcribe.add_argument("--plot", action="store_true", help="also write NAME.png, a piano roll")
    transcribe.add_argument("--labels", type=Path, help="MusicNet csv of the true notes: plot and score against them")
    _add_model_options(transcribe)
    _add_decoder_options(transcribe)
    transcribe.set_defaults(run=_transcribe)

    evaluate = commands.add_parser("evaluate", help="frame and note metrics over labelled recordings")
    evaluate.add_argument("path", type=Path, help="folder: SPLIT_data/ID.wav + SPLIT_labels/ID.csv, or ID.wav + ID.csv")
    evaluate.add_argument(
        "--decoder",
        action="append",
        choices=("hysteresis", "naive", "onsets"),
        help="repeat to compare (default: onsets for context models, else hysteresis)",
    )
    evaluate.add_argument(
        "--predictions", action="append", type=Path, help="folder of note csvs ID.csv from any system (repeatable)"
    )
    evaluate.add_argument("--split", help="only this split of a MusicNet-layout folder (e.g. test)")
    evaluate.add_argument("--per-recording", action="store_true", help="print every recording, not only pooled")
    evaluate.add_argument("--json", type=Path, help="write all metrics as JSON")
    evaluate.add_argument("--csv", type=Path, help="write all metrics as CSV")
    _add_model_options(evaluate)
    _add_decoder_options(evaluate)
    evaluate.set_defaults(run=_evaluate)

    tune = commands.add_parser("tune", help="grid-search decoder thresholds for the best note F1")
    tune.add_argument("path", type=Path, help="folder of labelled recordings (as for evaluate)")
    tune.add_argument(
        "--decoder",
        choices=("hysteresis", "naive", "onsets"),
        help="default: onsets for context models, else hysteresis",
    )
    tune.add_argument("--split", help="only this split of a MusicNet-layout folder (e.g. valid)")
    tune.add_argument("--grid", type=_grid, help="comma-separated thresholds to try (default 0.1,0.2,...,0.9)")
    tune.add_argument("--top", type=int, default=10, help="rows to print")
    tune.add_argument("--json", type=Path, help="write every trial as JSON")
    tune.add_argument("--save", action="store_true", help="store the best settings in the --ckpt checkpoint")
    _add_model_options(tune)
    _add_decoder_options(tune)
    tune.set_defaults(run=_tune)
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
