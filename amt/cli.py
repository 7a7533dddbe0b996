"""The ``amt`` command: data preparation, baselines, training, studies, transcription and evaluation.

Each sub-command is a handler (``_transcribe``, …) with its parser beside it (``_add_transcribe``);
:func:`build_parser` puts them together in the order ``amt --help`` lists them. ``amt train`` and
``amt sweep`` take Hydra overrides instead of flags, so :func:`main` hands them to Hydra unparsed.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from amt.errors import AmtError

if TYPE_CHECKING:
    from amt.checkpoint import Checkpoint
    from amt.decode import DecoderConfig
    from amt.engine import Exported
    from amt.transcribe import ModelRun, Outputs

console = Console()
Commands = argparse._SubParsersAction


# --- amt data ------------------------------------------------------------------------------------


def _data_synth(args: argparse.Namespace) -> None:
    from amt.data.synth import SynthCorpus

    corpus = SynthCorpus(args.out, preset=args.preset, seed=args.seed, soundfont=args.soundfont)
    windows = corpus.prepare()
    console.print(f"corpus ready: recordings in {corpus.recordings_dir}, windows in {windows}")
    _print_statistics(windows, corpus.splits)


def _add_data_synth(data: Commands) -> None:
    synth = data.add_parser("synth", help="build the offline MusicNet-like corpus (music21 scores + FluidSynth)")
    synth.add_argument(
        "--preset",
        default="mini",
        help="a corpus recipe in conf/corpus/: tiny (tests), mini (mini-MusicNet size, the report's), varied "
        "(procedural piano and ensembles in many timbres and rooms), piano-uiowa (extra piano training "
        "recordings, a recorded Steinway), halls (varied's music in concert halls and churches); default mini",
    )
    synth.add_argument("--out", required=True, type=Path, help="corpus folder (recordings/ and windows/ inside)")
    synth.add_argument("--seed", type=int, default=0, help="draws pieces, performances and rooms (default 0)")
    synth.add_argument("--soundfont", type=Path, default=None, help="General MIDI .sf2 (default: system GM font)")
    synth.set_defaults(run=_data_synth)


def _data_rerender(args: argparse.Namespace) -> None:
    from amt.data.synth import rerender_split

    out = rerender_split(args.preset, args.seed, args.split, args.soundfont, args.out)
    console.print(f"{args.split} split re-rendered with {args.soundfont} in an unseen hall: {out}")


def _add_data_rerender(data: Commands) -> None:
    rerender = data.add_parser(
        "rerender", help="one split of the corpus rendered with another soundfont, in a hall training never heard"
    )
    rerender.add_argument("--preset", default="mini", help="the corpus preset whose split to re-render (default mini)")
    rerender.add_argument("--seed", type=int, default=0, help="that corpus's seed (default 0)")
    rerender.add_argument("--split", default="test", help="train, valid or test (default test)")
    rerender.add_argument("--soundfont", required=True, type=Path, help="a General MIDI .sf2/.sf3 not used in training")
    rerender.add_argument("--out", required=True, type=Path, help="folder for SPLIT_data/ and SPLIT_labels/")
    rerender.set_defaults(run=_data_rerender)


def _data_musicnet(args: argparse.Namespace) -> None:
    from amt.data.musicnet import MusicNetWindows

    windows = MusicNetWindows(args.musicnet, args.out).prepare()
    console.print(f"mini-MusicNet-format windows in {windows}")
    _print_statistics(windows)


def _add_data_musicnet(data: Commands) -> None:
    musicnet = data.add_parser("musicnet", help="mini-MusicNet-format windows from a MusicNet copy")
    musicnet.add_argument(
        "--musicnet", required=True, type=Path, help="MusicNet root (train_data/, train_labels/, ...)"
    )
    musicnet.add_argument("--out", required=True, type=Path, help="folder for the windows (.npy files)")
    musicnet.set_defaults(run=_data_musicnet)


def _data_minimusicnet(args: argparse.Namespace) -> None:
    from amt.data.minimusicnet import MiniMusicNet

    path = MiniMusicNet(args.path, download=args.download).prepare()
    console.print(f"mini-MusicNet checked: {path}")
    _print_statistics(path)


def _add_data_minimusicnet(data: Commands) -> None:
    mini = data.add_parser("minimusicnet", help="check (or download) the published mini-MusicNet files")
    mini.add_argument("--path", required=True, type=Path, help="folder holding (or to hold) the six .npy files")
    mini.add_argument("--download", action="store_true", help="download the files first when they are missing")
    mini.set_defaults(run=_data_minimusicnet)


def _data_spectra(args: argparse.Namespace) -> None:
    from amt.data.datamodule import export_spectra

    out = export_spectra(args.path, args.out, args.bins)
    size = sum(file.stat().st_size for file in out.glob("*.npy"))
    console.print(f"spectra folder ready: {out} ({size / 1e6:.1f} MB); train on it with data=spectra data.path={out}")


def _add_data_spectra(data: Commands) -> None:
    spectra = data.add_parser("spectra", help="copy a folder of windows as spectra and labels only (a spectra folder)")
    spectra.add_argument("path", type=Path, help="folder of windows")
    spectra.add_argument("--bins", type=int, required=True, help="spectrum bins the model takes (model.bins)")
    spectra.add_argument("--out", required=True, type=Path, help="folder for the spectra folder")
    spectra.set_defaults(run=_data_spectra)


def _data_stats(args: argparse.Namespace) -> None:
    _print_statistics(Path(args.path))


def _print_statistics(windows_dir: Path, splits: Sequence[str] | None = None) -> None:
    """One row per split (default: all three): the label statistics used to compare a corpus with mini-MusicNet."""
    from amt.data.minimusicnet import load_split
    from amt.data.musicnet import window_statistics
    from amt.data.recordings import SPLITS
    from amt.labels import note_name

    table = Table(title=f"windows in {windows_dir}")
    for column in ("split", "windows", "notes/window", "max notes", "empty", "pitch range", "outside A0..F7"):
        table.add_column(column, justify="right")
    for split in splits or SPLITS:
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


def _add_data_stats(data: Commands) -> None:
    stats = data.add_parser("stats", help="label statistics of a folder of windows")
    stats.add_argument("path", type=Path, help="folder of windows")
    stats.set_defaults(run=_data_stats)


def _data_describe(args: argparse.Namespace) -> None:
    from amt.data.statistics import MAESTRO, comparison_rows, describe

    columns = {str(path): describe(path, None if args.split == "all" else args.split) for path in args.recordings}
    published = {} if args.no_published else {"MAESTRO (published)": MAESTRO}
    table = Table(title=f"what the corpora hold ({args.split} recordings)")
    for column in ("", *columns, *published):
        table.add_column(column, justify="right" if column else "left", overflow="fold", max_width=48)
    for row in comparison_rows(columns, published):
        table.add_row(*row)
    _print_wide(table)


def _add_data_describe(data: Commands) -> None:
    describe = data.add_parser(
        "describe", help="what folders of recordings hold (notes/s, polyphony, range, velocity, pedal, timbres, rooms)"
    )
    describe.add_argument("recordings", type=Path, nargs="+", help="folders of recordings, side by side")
    describe.add_argument("--split", default="all", help="one split's recordings (train, valid, test) or all (default)")
    describe.add_argument("--no-published", action="store_true", help="leave out MAESTRO's published figures")
    describe.set_defaults(run=_data_describe)


def _add_data(commands: Commands) -> None:
    data = commands.add_parser("data", help="build, download or check data sets")
    sources = data.add_subparsers(dest="source", required=True)
    for add in (
        _add_data_synth,
        _add_data_rerender,
        _add_data_musicnet,
        _add_data_minimusicnet,
        _add_data_spectra,
        _add_data_stats,
        _add_data_describe,
    ):
        add(sources)


# --- amt baseline --------------------------------------------------------------------------------


def _baseline_ridge(args: argparse.Namespace) -> None:
    from amt.baselines import ridge_baseline
    from amt.data.recordings import SPLITS

    results = ridge_baseline(args.path, bins=args.bins, ridge=args.ridge)
    table = Table(title=f"ridge regression on |rfft| (bins={args.bins}, λ={args.ridge:g}), micro AP")
    for split in SPLITS:
        table.add_column(split, justify="right")
    table.add_row(*(f"{results[f'{split}/ap']:.3f}" for split in SPLITS))
    console.print(table)


def _add_baseline(commands: Commands) -> None:
    baseline = commands.add_parser("baseline", help="reference baselines").add_subparsers(dest="name", required=True)
    ridge = baseline.add_parser("ridge", help="ridge regression on FFT features (mini-MusicNet README)")
    ridge.add_argument("path", type=Path, help="folder of windows")
    ridge.add_argument("--bins", type=int, default=2049, help="spectrum bins used as features (default 2049: all)")
    ridge.add_argument("--ridge", type=float, default=1e-3, help="the regularisation λ (default 0.001)")
    ridge.set_defaults(run=_baseline_ridge)


# --- options shared by transcribe, evaluate and tune ---------------------------------------------


def _progress_bar() -> Progress | nullcontext:
    """A transient progress bar on stderr for long recordings; nothing when stderr is not a terminal."""
    return Progress(console=Console(stderr=True), transient=True) if sys.stderr.isatty() else nullcontext()


def _print_wide(table: Table) -> None:
    """Print a table whole: into a file or pipe at its natural width instead of squeezed into 80 columns."""
    if console.is_terminal:
        console.print(table)
    else:
        Console(width=console.measure(table, options=console.options.update_width(10_000)).maximum).print(table)


MAX_SECONDS = 60.0
"""The longest gap or minimum note length a decoder option may ask for."""
MAX_WEIGHT = 10.0
"""The largest weight a decoder option may give (``--frame-rise``)."""


def _up_to(high: float, what: str) -> Callable[[str], float]:
    """An argparse type: a number (``what``: seconds, a weight) in ``[0, high]``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not 0.0 <= value <= high:  # also refuses nan
            raise argparse.ArgumentTypeError(f"must be {what} in [0, {high:g}], got {text}")
        return value

    return parse


_seconds = _up_to(MAX_SECONDS, "seconds")
_weight = _up_to(MAX_WEIGHT, "a weight")


def _whole(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number in ``low..high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be in {low}..{high if high is not None else ''}, got {text}")
        return value

    return parse


def _hop(text: str) -> int:
    from amt.grid import WINDOW_SIZE

    return _whole(1, WINDOW_SIZE)(text)


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a probability in [0, 1), got {text}")
    return value


def _thresholds(text: str) -> tuple[float, ...]:
    try:
        return tuple(_probability(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated probabilities, got {text!r}") from None


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", type=Path, default=None, help="a training checkpoint (default: the bundled model)")
    parser.add_argument(
        "--hop",
        type=_hop,
        default=None,
        help="samples between window centres, from 1 to the window size (4096; a larger hop would skip audio), "
        "for window models (default: the window size); context models keep their own",
    )
    parser.add_argument("--batch-size", type=_whole(1, 1 << 20), default=1024, help="windows per forward pass")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--engine",
        choices=("auto", "torch", "onnx"),
        default="auto",
        help="what runs a context model: ONNX Runtime (onnx, several times faster on a CPU; pip install "
        "'amt[fast]') or PyTorch (torch); auto: onnx when installed (default: auto)",
    )
    parser.add_argument(
        "--threads",
        type=_threads,
        default="auto",
        help="CPU threads: auto (the cores other programs leave idle, at least 1) or a number (default: auto)",
    )


def _threads(text: str) -> int | str:
    if text == "auto":
        return text
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise argparse.ArgumentTypeError(f"expected auto or a whole number from 1, got {text!r}")


def _add_decoder_options(parser: argparse.ArgumentParser) -> None:
    """One option per :class:`amt.decode.DecoderConfig` setting; a value not given keeps the checkpoint's."""
    from amt.decode import DecoderConfig

    group = parser.add_argument_group(
        "decoder options (default: the settings tuned for the checkpoint and saved in it, which amt prints; "
        "for a checkpoint without them, the value shown)"
    )
    for setting in fields(DecoderConfig):
        flag, help_text = f"--{setting.name.replace('_', '-')}", f"{setting.metadata['help']} ({setting.default})"
        if setting.type in (bool, "bool"):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        else:
            kind = {"probability": _probability, "seconds": _seconds, "weight": _weight}[setting.metadata["kind"]]
            group.add_argument(flag, type=kind, default=None, help=help_text)


def _decoder_choice(parser: argparse.ArgumentParser, **options) -> None:
    from amt.decode import DECODERS

    parser.add_argument(
        "--decoder", choices=tuple(DECODERS), help="default: onsets for context models, else hysteresis", **options
    )


def _decoder_config(args: argparse.Namespace, checkpoint: Checkpoint | Exported) -> DecoderConfig:
    """The decoder options given, over the settings saved with the checkpoint (``amt tune --save``)."""
    from amt.decode import DecoderConfig

    given = {s.name: getattr(args, s.name) for s in fields(DecoderConfig) if getattr(args, s.name) is not None}
    return replace(checkpoint.decoder_config, **given)


def _model_run(args: argparse.Namespace, checkpoint: Checkpoint | Exported, decoders: Sequence[str] | None) -> ModelRun:
    """The checkpoint's model with ``decoders`` (None: the model's default decoder), on its frame grid.
    An :class:`amt.engine.Exported` model runs without PyTorch, so its threads are ONNX Runtime's only."""
    from amt.decode import default_decoder
    from amt.engine import Exported, model_for
    from amt.threads import ThreadSettings, usable_cores
    from amt.transcribe import ModelRun, resolve_device

    settings = ThreadSettings(intra_op=args.threads)
    if isinstance(checkpoint, Exported):
        threads = settings.intra_op_threads(args.cpu_load, wait=True)
    else:
        threads = settings.apply(args.cpu_load, wait=True)
    if threads < usable_cores() and args.threads == "auto":
        logging.getLogger("amt").info("other programs keep the CPU busy: %d of %d cores used", threads, usable_cores())
    device = resolve_device(args.device)
    return ModelRun(
        model_for(checkpoint, args.engine, device, threads),
        checkpoint.grid(args.hop),
        tuple(decoders or [default_decoder(checkpoint.context)]),
        _decoder_config(args, checkpoint),
        args.batch_size,
        device,
    )


def _split(args: argparse.Namespace, preferred: str) -> str | None:
    """``--split``; without it, ``preferred`` when the folder holds several splits (a MusicNet-layout
    root), so a train split is never pooled in by accident; ``all`` for every split."""
    if args.split is not None:
        return None if args.split == "all" else args.split
    splits = sorted(d.name.removesuffix("_data") for d in Path(args.path).glob("*_data") if d.is_dir())
    if len(splits) > 1 and preferred in splits:
        logging.getLogger("amt").info(
            "%s holds the splits %s: using %s (--split NAME for another, --split all for every one)",
            args.path,
            ", ".join(splits),
            preferred,
        )
        return preferred
    return None


def _report_failures(failed: dict[str, str]) -> None:
    """One line per recording left out, then a non-zero exit, as ``amt transcribe`` does for its inputs."""
    for line in failed.values():
        print(f"amt: error: {line}", file=sys.stderr)
    if failed:
        raise AmtError(f"{len(failed)} recording(s) could not be used; the others are in the results above")


def _log_decoder(run: ModelRun) -> None:
    """Log the decoder settings in effect: the checkpoint's tuned ones, then the options given."""
    from amt.decode import describe

    for decoder in run.decoders:
        logging.getLogger("amt").info("decoder %s: %s", decoder, describe(decoder, run.config))


def _load(args: argparse.Namespace) -> Checkpoint:
    from amt.checkpoint import load

    return load(args.ckpt)


def _load_to_run(args: argparse.Namespace) -> Checkpoint | Exported:
    """The checkpoint to transcribe with: its cached ONNX graph and card when ONNX Runtime runs it
    (no PyTorch to import, no tensors to read), else the checkpoint itself."""
    from amt.engine import exported

    return exported(args.ckpt, args.engine, args.device) or _load(args)


# --- amt transcribe ------------------------------------------------------------------------------


def _transcribe(args: argparse.Namespace) -> None:
    from amt.transcribe import audio_inputs, output_paths, remove_if_empty

    args.inputs = audio_inputs(args.inputs)
    if args.labels is not None and len(args.inputs) != 1:
        raise AmtError("--labels goes with one input recording")
    outputs, created = output_paths(args.inputs, args.out, [args.labels] if args.labels else [])
    try:
        _transcribe_all(args, outputs)
    finally:
        remove_if_empty(created)


def _transcribe_all(args: argparse.Namespace, outputs: list[Outputs]) -> None:
    from amt.transcribe import TranscribeSettings, score_line, transcribe_file

    run = _model_run(args, _load_to_run(args), [args.decoder] if args.decoder else None)
    settings = TranscribeSettings(
        grid=run.grid,
        batch_size=run.batch_size,
        device=run.device,
        decoder=run.decoders[0],
        decoder_config=run.config,
        plot=args.plot or args.labels is not None,
    )
    _log_decoder(run)
    failed = 0
    with _progress_bar() as progress:
        for audio, out in zip(args.inputs, outputs, strict=True):
            try:
                result = transcribe_file(audio, out, run.model, settings, args.labels, progress)
            except AmtError as error:
                print(f"amt: error: {error}", file=sys.stderr)
                failed += 1
                continue
            written = [out.midi, out.csv] + ([out.png] if settings.plot else [])
            console.print(f"{audio}: {len(result.events)} notes → {', '.join(map(str, written))}", soft_wrap=True)
            if result.reference is not None:
                scores = score_line(result.reference, result.events, result.frames)
                console.print(f"  against {args.labels}: {scores}", soft_wrap=True)
    if failed:
        raise AmtError(f"{failed} of {len(args.inputs)} inputs failed")


def _add_transcribe(commands: Commands) -> None:
    transcribe = commands.add_parser("transcribe", help="transcribe recordings to MIDI, note csv and piano roll")
    transcribe.add_argument(
        "inputs", nargs="+", type=Path, help="audio files (wav, flac, ogg, mp3; any rate) or folders of them"
    )
    transcribe.add_argument("-o", "--out", required=True, type=Path, help="output folder, or FILE.mid for one input")
    _decoder_choice(transcribe)
    transcribe.add_argument("--plot", action="store_true", help="also write NAME.png, a piano roll")
    transcribe.add_argument("--labels", type=Path, help="MusicNet csv of the true notes: plot and score against them")
    _add_model_options(transcribe)
    _add_decoder_options(transcribe)
    transcribe.set_defaults(run=_transcribe)


# --- amt evaluate --------------------------------------------------------------------------------


def _evaluate(args: argparse.Namespace) -> None:
    from amt.evaluate import diagnostics_table, endings_table, evaluate, false_alarms_table, results_table, write_csv
    from amt.files import write_json
    from amt.grid import FrameGrid

    split = _split(args, "test")
    run = _model_run(args, _load(args), args.decoder) if args.ckpt or not args.predictions else None
    if run is not None:
        _log_decoder(run)
    grid = FrameGrid(args.hop) if run is None and args.hop is not None else None
    with _progress_bar() as progress:
        results = evaluate(args.path, run, args.predictions or (), grid, progress, split, args.diagnostics)
    _print_wide(results_table(results, per_recording=args.per_recording))
    for system, table in results.get("diagnostics", {}).items():
        _print_wide(diagnostics_table(system, table))
    if "endings" in results:
        _print_wide(endings_table(str(args.path), results["endings"]))
        _print_wide(false_alarms_table(str(args.path), results["false_alarms"]))
    if args.json:
        write_json(results, args.json)
    if args.csv:
        write_csv(results, args.csv)
    _report_failures(results["failed"])


def _add_evaluate(commands: Commands) -> None:
    evaluate = commands.add_parser("evaluate", help="frame and note metrics over labelled recordings")
    evaluate.add_argument("path", type=Path, help="folder: SPLIT_data/ID.wav + SPLIT_labels/ID.csv, or ID.wav + ID.csv")
    _decoder_choice(evaluate, action="append")
    evaluate.add_argument(
        "--predictions", action="append", type=Path, help="folder of note csvs ID.csv from any system (repeatable)"
    )
    evaluate.add_argument(
        "--split", help="a split of a MusicNet-layout folder (default: test when it has several; all: every split)"
    )
    evaluate.add_argument("--per-recording", action="store_true", help="print every recording, not only pooled")
    evaluate.add_argument(
        "--diagnostics",
        action="store_true",
        help="where notes are lost (note recall, precision and F1 by octave, polyphony, duration, velocity, timbre)"
        " and where found notes end (offsets on time, early, late; key-up under the pedal or not), and what the"
        " false alarms mistook (an octave, a semitone, ...)",
    )
    evaluate.add_argument("--json", type=Path, help="write all metrics as JSON")
    evaluate.add_argument("--csv", type=Path, help="write all metrics as CSV")
    _add_model_options(evaluate)
    _add_decoder_options(evaluate)
    evaluate.set_defaults(run=_evaluate)


# --- amt tune ------------------------------------------------------------------------------------


def _tune(args: argparse.Namespace) -> None:
    from amt.decode import describe
    from amt.evaluate import THRESHOLD_GRID, trial_records, tune, tuning_table
    from amt.files import write_json

    if args.save and args.ckpt is None:
        raise AmtError("--save writes into the checkpoint: name it with --ckpt")
    checkpoint = _load(args)
    run = _model_run(args, checkpoint, [args.decoder] if args.decoder else None)
    decoder = run.decoders[0]
    with _progress_bar() as progress:
        trials, failed = tune(args.path, run, decoder, args.grid or THRESHOLD_GRID, progress, _split(args, "valid"))
    _print_wide(tuning_table(trials, decoder, f"{decoder} decoder thresholds on {args.path}", args.top))
    console.print(f"best: {describe(decoder, trials[0][0])}")
    if args.json:
        write_json(trial_records(trials), args.json)
    if args.save:
        checkpoint.save_decoder_config(trials[0][0])
        console.print(f"saved in {args.ckpt}: transcribe, evaluate and tune now start from these settings")
    _report_failures(failed)


def _add_tune(commands: Commands) -> None:
    tune = commands.add_parser("tune", help="grid-search decoder thresholds for the best note F1")
    tune.add_argument("path", type=Path, help="folder of labelled recordings (as for evaluate)")
    _decoder_choice(tune)
    tune.add_argument(
        "--split", help="a split of a MusicNet-layout folder (default: valid when it has several; all: every split)"
    )
    tune.add_argument("--grid", type=_thresholds, help="comma-separated thresholds to try (default 0.1,0.2,...,0.9)")
    tune.add_argument("--top", type=int, default=10, help="rows to print")
    tune.add_argument("--json", type=Path, help="write every trial as JSON")
    tune.add_argument("--save", action="store_true", help="store the best settings in the --ckpt checkpoint")
    _add_model_options(tune)
    _add_decoder_options(tune)
    tune.set_defaults(run=_tune)


# --- the command ---------------------------------------------------------------------------------


HYDRA_COMMANDS = {
    "train": ("amt.train", "fit a model with Hydra overrides (amt train model=cnn_multi; amt train --help)"),
    "sweep": ("amt.sweep", "run a study of training runs (amt sweep -m study=dropout; amt sweep --help)"),
}
"""Sub-commands configured by Hydra: name → (module whose ``command()`` runs it, help line)."""


def _add_hydra_commands(commands: Commands) -> None:
    """Listed in ``amt --help``; :func:`main` hands their arguments to Hydra before argparse sees them."""
    for name, (_, help_line) in HYDRA_COMMANDS.items():
        commands.add_parser(name, help=help_line, add_help=False)


EXTRAS = {
    "lightning": "train",
    "wandb": "train",
    "hydra-joblib-launcher": "sweep",
    "hydra-optuna-sweeper": "sweep",
    "music21": "corpus",
    "fluidsynth": "corpus",
}
"""What only an extra installs (import name, or package name for Hydra's plugins) → the extra, for a
one-line error naming it."""

SWEEP_PLUGINS = {
    "hydra_plugins.hydra_joblib_launcher": "hydra-joblib-launcher",
    "hydra_plugins.hydra_optuna_sweeper": "hydra-optuna-sweeper",
}
"""Hydra finds its plugins by scanning, so a missing one is an unreadable config error, not an ImportError."""


def _check_sweep_plugins() -> None:
    for module, package in SWEEP_PLUGINS.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # no hydra_plugins package at all
            found = False
        if not found:
            raise ModuleNotFoundError(f"{package} is not installed", name=package)


def _missing_extra(error: ModuleNotFoundError) -> str | None:
    """The pip command that installs what ``error`` found missing, when an amt extra provides it."""
    extra = EXTRAS.get((error.name or "").split(".")[0])
    return f"{error.name} is not installed: pip install 'amt[{extra}]'" if extra else None


def _hydra_command(name: str, overrides: Sequence[str]) -> int:
    """Run ``amt train``/``amt sweep``: Hydra reads the overrides from ``sys.argv``."""
    try:
        if name == "sweep":
            _check_sweep_plugins()
        module = importlib.import_module(HYDRA_COMMANDS[name][0])
    except ModuleNotFoundError as error:
        if (message := _missing_extra(error)) is None:
            raise
        print(f"amt: error: amt {name} needs more packages: {message}", file=sys.stderr)
        return 2
    sys.argv = [f"amt {name}", *overrides]
    module.command()
    return 0


def build_parser() -> argparse.ArgumentParser:
    from amt import __version__

    parser = argparse.ArgumentParser(prog="amt", description="Automatic music transcription.")
    parser.add_argument("--version", action="version", version=f"amt {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (_add_data, _add_baseline, _add_hydra_commands, _add_transcribe, _add_evaluate, _add_tune):
        add(commands)
    return parser


def _stop(signum: int, frame) -> None:
    """SIGTERM ends amt as Ctrl-C does: through every ``finally``, so nothing half-built stays behind."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in HYDRA_COMMANDS:
        return _hydra_command(argv[0], argv[1:])
    from amt.threads import CpuLoad

    cpu_load = CpuLoad()  # measured while torch loads, for --threads auto
    args = build_parser().parse_args(argv)
    args.cpu_load = cpu_load
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run: Callable[[argparse.Namespace], None] = args.run
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        run(args)
    except AmtError as error:
        print(f"amt: error: {error}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as error:
        if (message := _missing_extra(error)) is None:
            raise
        print(f"amt: error: amt {args.command} needs more packages: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("amt: interrupted; nothing half-written was left behind", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
