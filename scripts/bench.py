"""Training and inference throughput of the CNNs on synthetic data: ``python scripts/bench.py`` (``make bench``).

Random spectra and labels of the real shapes (``[N, 512]``, ``[N, 81]``, ≈ 5 % of labels on), a
few hundred steps rather than a 62,500-window epoch; per-epoch times are extrapolated from the
steady-state rate (the first steps of every run are warm-up and not timed). Reported:

* a bare PyTorch loop (forward, BCE, backward, Adam) over the project's DataLoader,
* the Lightning Trainer fitting :class:`~amt.module.TranscriptionModule` with the same model,
  optimiser and data, and the ratio of the two; the Trainer's time includes the epoch-end
  exact train AP over every window, which the bare loop does not compute,
* optionally (``--reference``) the bare loop with ``nn.Conv1d`` instead of :class:`~amt.models.cnn.SameConv1d`,
* inference windows/s at batch 1024,
* what a batch costs to fetch: one tensor gather (the project's ``SpectraDataset``) against 32
  ``__getitem__`` calls and the default collate,
* the same training step and inference on a busy machine (``--busy``): with that many busy
  processes beside it against idle, in the same run, for torch's default thread count and for
  amt's ``auto`` threads (:mod:`amt.threads`), so the slowdown each suffers reads as a ratio,
* transcription speed (``--rtf-minutes``): the real-time factor (audio seconds per wall-clock
  second) of :func:`~amt.transcribe.transcribe_file` on a synthesised recording, end to end from
  the wav file to the MIDI file and note csv, for the bundled cnn_multi at the report's hop and at a
  4× finer one, and for the default model (the context model, onsets decoder) run by PyTorch, by
  PyTorch with ``torch.compile`` (compiled in an untimed first run) and by ONNX Runtime
  (:mod:`amt.engine`, when installed), in float and with int8 weights (ONNX Runtime's dynamic
  quantisation, with how far its notes and probabilities move from float's); models are loaded once
  before timing, as ``amt transcribe`` does for many files;
* start-up (``--startup``): the wall time of the whole ``amt transcribe`` command on a two-second
  recording with the default model, from the shell to the files written (the transcription itself
  takes milliseconds), by PyTorch and by ONNX Runtime from its cached graph, which skips importing
  PyTorch (:func:`amt.engine.exported`).

Runs alternate between the contenders; each figure is the median over ``--repeats`` runs, next to
the best run (what an otherwise idle machine gives), since the machines this runs on are shared
and noisy.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import functools
import logging
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

from amt.audio import SAMPLE_RATE, WINDOW_SIZE, save_audio
from amt.bundled import CNN_MULTI_CHECKPOINT
from amt.checkpoint import Checkpoint, load
from amt.data.datamodule import SpectraDataset
from amt.data.render import Track, render_harmonic
from amt.decode import default_decoder
from amt.engine import Exported, export_once, model_for, onnx_installed
from amt.grid import FrameGrid
from amt.labels import REPORT_NOTES
from amt.metrics import matched_notes
from amt.models.cnn import CNN1Layer, CNNMulti, SameConv1d
from amt.module import TranscriptionModule
from amt.threads import CpuLoad, ThreadSettings, usable_cores
from amt.transcribe import Outputs, TranscribeSettings, Transcription, transcribe_file

EPOCH_WINDOWS = 62_500
"""Training windows in one mini-MusicNet epoch."""
MODELS = {"cnn_1layer": CNN1Layer, "cnn_multi": CNNMulti}
WARMUP_STEPS = 20
INFERENCE_BATCH = 1024


def synthetic_data(windows: int, bins: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    spectra = torch.rand(windows, bins, generator=generator)
    labels = (torch.rand(windows, REPORT_NOTES.notes, generator=generator) < 0.05).float()
    return spectra, labels


def batch_loader(spectra: torch.Tensor, labels: torch.Tensor, batch_size: int) -> DataLoader:
    """The project's fast path: a shuffled batch of indices → one gather per tensor."""
    sampler = BatchSampler(RandomSampler(spectra), batch_size, drop_last=True)
    return DataLoader(SpectraDataset(spectra, labels), batch_size=None, sampler=sampler)


def item_loader(spectra: torch.Tensor, labels: torch.Tensor, batch_size: int) -> DataLoader:
    """The textbook path: ``batch_size`` ``__getitem__`` calls, then the default collate."""
    return DataLoader(TensorDataset(spectra, labels), batch_size=batch_size, shuffle=True, drop_last=True)


def adam(params) -> torch.optim.Optimizer:
    # fused=True: one kernel for all parameters; the default per-parameter loop costs ≈ 0.5 ms a step here.
    return torch.optim.Adam(params, lr=1e-3, fused=True)


def seconds_per_step_bare(model: nn.Module, loader: DataLoader) -> float:
    optimizer, criterion = adam(model.parameters()), nn.BCEWithLogitsLoss()
    model.train()
    start = 0.0
    for step, (spectra, labels) in enumerate(loader):
        if step == WARMUP_STEPS:
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        criterion(model(spectra), labels).backward()
        optimizer.step()
    return (time.perf_counter() - start) / (len(loader) - WARMUP_STEPS)


class _Stopwatch(L.Callback):
    """Times the Trainer from the first step after warm-up to the end of fitting (epoch-end AP included)."""

    def __init__(self):
        self.start = self.end = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == WARMUP_STEPS:
            self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        self.end = time.perf_counter()


def seconds_per_step_trainer(model: nn.Module, loader: DataLoader, train_ap_every: int) -> float:
    stopwatch = _Stopwatch()
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[stopwatch],
    )
    trainer.fit(TranscriptionModule(model, optimizer=adam, train_ap_every=train_ap_every), train_dataloaders=loader)
    return (stopwatch.end - stopwatch.start) / (len(loader) - WARMUP_STEPS)


def seconds_per_batch_fetch(loader: DataLoader) -> float:
    start = time.perf_counter()
    for _ in loader:
        pass
    return (time.perf_counter() - start) / len(loader)


def windows_per_second_inference(model: nn.Module, spectra: torch.Tensor) -> float:
    batch = min(INFERENCE_BATCH, len(spectra))
    model.eval()
    with torch.inference_mode():
        model(spectra[:batch])
        start = time.perf_counter()
        for first in range(0, len(spectra) - batch + 1, batch):
            model(spectra[first : first + batch])
        batches = len(spectra) // batch
    return batches * batch / (time.perf_counter() - start)


def synthetic_recording(path: Path, minutes: float, seed: int = 0) -> float:
    """A piano-like recording of random three-note chords and a melody; returns its length in seconds."""
    rng = np.random.default_rng(seed)
    seconds = minutes * 60
    onsets = np.arange(0, seconds - 1, 0.25)
    pitches = rng.integers(48, 84, size=len(onsets))
    notes = [(t, t + rng.uniform(0.2, 1.0), p, rng.integers(50, 110)) for t, p in zip(onsets, pitches, strict=True)]
    for t in np.arange(0, seconds - 2, 2.0):
        root = rng.integers(36, 60)
        notes += [(t, t + 1.9, root + step, 70) for step in (0, 4, 7)]
    track = Track(program=0, timbre="piano", notes=np.array(notes, dtype=np.float64))
    samples = render_harmonic([track], round(seconds * SAMPLE_RATE))
    save_audio(path, 0.9 * samples / np.abs(samples).max())
    return seconds


def real_time_factor(audio: Path, model: nn.Module, settings: TranscribeSettings, seconds: float) -> float:
    """Audio seconds transcribed per wall-clock second, wav file in, MIDI file and note csv out."""
    start = time.perf_counter()
    transcribe_file(audio, Outputs(audio.with_suffix(".mid")), model, settings)
    return seconds / (time.perf_counter() - start)


def int8_graph(checkpoint: Checkpoint, folder: Path) -> Exported:
    """``checkpoint``'s ONNX graph with int8 weights (ONNX Runtime's dynamic quantisation of every
    operator it can quantise: the convolutions and the matrix products), written in ``folder``."""
    from onnxruntime.quantization import quantize_dynamic

    exported = export_once(checkpoint)
    graph = folder / "int8.onnx"
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # it advises pre-processing the graph (shape inference) on the root logger
    try:
        quantize_dynamic(exported.graph, graph)
    finally:
        root.setLevel(level)
    return dataclasses.replace(exported, graph=graph)


def agreement(reference: Transcription, other: Transcription) -> tuple[float, float]:
    """Onset-only note F1 of ``other``'s notes against ``reference``'s, and the largest difference
    between their frame and onset probabilities."""
    matched = matched_notes(reference.events, other.events, offset_ratio=None)
    f1 = 2 * matched / max(1, len(reference.events) + len(other.events))
    ref, oth = reference.frames, other.frames
    return f1, float(max(np.abs(ref.probabilities - oth.probabilities).max(), np.abs(ref.onsets - oth.onsets).max()))


def startup_seconds(audio: Path, engine: str) -> float:
    """Wall time of ``amt transcribe AUDIO`` with the default model in a fresh interpreter."""
    start = time.perf_counter()
    command = [sys.executable, "-m", "amt", "transcribe", str(audio), "-o", str(audio.with_suffix(".mid"))]
    subprocess.run([*command, "--engine", engine], check=True, capture_output=True)
    return time.perf_counter() - start


class _TorchConv1d(nn.Conv1d):
    """``nn.Conv1d`` on ``[batch, length]``: the reference :class:`SameConv1d` replaces."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.unsqueeze(1)).squeeze(1)


def with_torch_convs(model: nn.Module) -> nn.Module:
    """The same model (same weights) with every :class:`SameConv1d` swapped for ``nn.Conv1d``."""
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, SameConv1d):
                conv = _TorchConv1d(1, 1, child.kernel_size, padding=child.kernel_size // 2)
                conv.load_state_dict(child.state_dict())
                setattr(parent, name, conv)
    return model


@contextlib.contextmanager
def busy_processes(count: int):
    """``count`` processes spinning on a core each, as a user's other programs would, until the block ends."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(0.5)  # started and spinning
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def under_load(
    repeats: int, busy: int, settings: dict[str, ThreadSettings], measures: dict[str, Callable[[], float]]
) -> dict[tuple[str, str, str], list[float]]:
    """Every measure with every thread setting, idle and beside ``busy`` busy processes, interleaved:
    ``(measure, setting, "idle" | "busy")`` → one figure per repeat."""
    samples: dict[tuple[str, str, str], list[float]] = {}
    for _ in range(repeats):
        for state in ("idle", "busy"):
            with busy_processes(busy) if state == "busy" else contextlib.nullcontext():
                for setting_name, setting in settings.items():
                    threads = setting.apply(CpuLoad(), wait=True)
                    samples.setdefault(("threads", setting_name, state), []).append(threads)
                    for measure_name, measure in measures.items():
                        samples.setdefault((measure_name, setting_name, state), []).append(measure())
    return samples


def timed(repeats: int, runs: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Each run ``repeats`` times, interleaved, so load from other processes hits them alike."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            samples[name].append(run())
    return samples


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python scripts/bench.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="cnn_multi")
    parser.add_argument("--steps", type=int, default=400, help="training steps per timed run (default 400)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="runs per contender; medians are reported")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument(
        "--train-ap-every", type=int, default=4, help="the Trainer's train AP uses every n-th batch (default 4)"
    )
    parser.add_argument("--reference", action="store_true", help="also time the bare loop with nn.Conv1d")
    parser.add_argument(
        "--rtf-minutes", type=float, default=5.0, help="length of the recording transcribed (default 5; 0 skips)"
    )
    parser.add_argument(
        "--startup",
        type=int,
        default=3,
        help="timed runs of amt transcribe per engine for start-up (default 3; 0 skips)",
    )
    parser.add_argument(
        "--busy", type=int, default=1, help="busy processes beside the busy-machine rows (default 1; 0 skips them)"
    )
    args = parser.parse_args(argv)
    if args.steps <= WARMUP_STEPS:
        parser.error(f"--steps must be more than the {WARMUP_STEPS} warm-up steps")
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    for message in (".*does not have many workers.*", ".*no `val_dataloader`.*", ".*LeafSpec.*"):
        warnings.filterwarnings("ignore", message=message)

    model_class = MODELS[args.model]
    spectra, labels = synthetic_data(args.steps * args.batch_size, model_class().bins)
    loader = batch_loader(spectra, labels, args.batch_size)

    def fresh_model() -> nn.Module:
        torch.manual_seed(0)
        return model_class()

    runs = {
        "bare PyTorch loop": lambda: seconds_per_step_bare(fresh_model(), loader),
        "Lightning Trainer": lambda: seconds_per_step_trainer(fresh_model(), loader, args.train_ap_every),
    }
    if args.reference:
        runs["bare loop, nn.Conv1d"] = lambda: seconds_per_step_bare(with_torch_convs(fresh_model()), loader)
    per_step = timed(args.repeats, runs)
    fetch = timed(
        args.repeats,
        {
            "gather": functools.partial(seconds_per_batch_fetch, loader),
            "per-item": functools.partial(seconds_per_batch_fetch, item_loader(spectra, labels, args.batch_size)),
        },
    )
    inference = timed(args.repeats, {"inference": lambda: windows_per_second_inference(fresh_model(), spectra)})
    threads = torch.get_num_threads()
    loaded = {}
    if args.busy > 0:
        loaded = under_load(
            args.repeats,
            args.busy,
            {
                f"{usable_cores()} threads (torch)": ThreadSettings(usable_cores()),
                "auto threads (amt)": ThreadSettings(),
            },
            {
                "train ms/step": lambda: 1e3 * seconds_per_step_bare(fresh_model(), loader),
                "inference windows/s": lambda: windows_per_second_inference(fresh_model(), spectra),
            },
        )
        torch.set_num_threads(threads)
    rtf: dict[str, list[float]] = {}
    int8_agreement = None
    if args.rtf_minutes > 0:
        with tempfile.TemporaryDirectory() as folder:
            audio = Path(folder) / "recording.wav"
            seconds = synthetic_recording(audio, args.rtf_minutes)
            cnn_multi, default = load(CNN_MULTI_CHECKPOINT).model, load()
            contenders = {
                f"cnn_multi, hop {hop}": functools.partial(
                    real_time_factor, audio, cnn_multi, TranscribeSettings(grid=FrameGrid(hop)), seconds
                )
                for hop in (WINDOW_SIZE, WINDOW_SIZE // 4)
            }
            as_shipped = TranscribeSettings(
                decoder=default_decoder(default.model.context), decoder_config=default.decoder_config
            )
            engines = ("torch", "onnx") if onnx_installed() else ("torch",)
            models = {engine: model_for(default, engine) for engine in engines}
            if onnx_installed():
                models["onnx int8"] = model_for(int8_graph(default, Path(folder)), "onnx", threads=threads)
                transcribed = {
                    name: transcribe_file(audio, Outputs(audio.with_suffix(".mid")), models[name], as_shipped)
                    for name in ("onnx", "onnx int8")
                }
                int8_agreement = agreement(transcribed["onnx"], transcribed["onnx int8"])
            for engine, model in models.items():
                contenders[f"default model, {engine}"] = functools.partial(
                    real_time_factor, audio, model, as_shipped, seconds
                )
            compiled = copy.deepcopy(default.model)
            compiled.compile(dynamic=True)
            contenders["default model, torch.compile"] = functools.partial(
                real_time_factor, audio, compiled, as_shipped, seconds
            )
            contenders["default model, torch.compile"]()  # untimed: compiles
            rtf = timed(args.repeats, contenders)
    startup: dict[str, list[float]] = {}
    if args.startup > 0:
        with tempfile.TemporaryDirectory() as folder:
            audio = Path(folder) / "short.wav"
            synthetic_recording(audio, 2 / 60)
            engines = {engine: functools.partial(startup_seconds, audio, engine) for engine in ("torch", "onnx")}
            if not onnx_installed():
                del engines["onnx"]
            for run in engines.values():
                run()  # untimed: exports the graph once, warms the file cache
            startup = timed(args.startup, engines)

    print(
        f"amt bench: {args.model}, batch {args.batch_size}, {args.steps} steps a run ({WARMUP_STEPS} warm-up), "
        f"{args.repeats} runs each, {threads} threads, torch {torch.__version__}"
    )
    print(f"{'training (median run)':<24}{'samples/s':>11}{'ms/step':>9}{'s/epoch':>9}{'best ms/step':>14}")
    for name, seconds in per_step.items():
        median, best = statistics.median(seconds), min(seconds)
        epoch = median * EPOCH_WINDOWS / args.batch_size
        print(f"{name:<24}{args.batch_size / median:>11,.0f}{median * 1e3:>9.2f}{epoch:>9.1f}{best * 1e3:>14.2f}")
    bare, trainer = per_step["bare PyTorch loop"], per_step["Lightning Trainer"]
    print(
        f"{'Trainer / bare':<24}{statistics.median(trainer) / statistics.median(bare):>10.2f}× median, "
        f"{min(trainer) / min(bare):.2f}× best    (epoch = {EPOCH_WINDOWS:,} windows)"
    )
    print(f"{'inference, batch 1024':<24}{statistics.median(inference['inference']):>11,.0f} windows/s")
    print(
        f"{'batch fetch':<24}{statistics.median(fetch['gather']) * 1e3:>11.3f} ms one gather, "
        f"{statistics.median(fetch['per-item']) * 1e3:.3f} ms {args.batch_size} items + collate"
    )
    if loaded:
        print(f"{f'beside {args.busy} busy process(es), median':<44}{'idle':>10}{'busy':>10}{'slowdown':>10}")
        for measure, setting in dict.fromkeys((m, s) for m, s, _ in loaded):
            if measure == "threads":
                continue
            idle, busy = (statistics.median(loaded[measure, setting, state]) for state in ("idle", "busy"))
            slowdown = busy / idle if measure.endswith("ms/step") else idle / busy
            print(f"{measure + ', ' + setting:<44}{idle:>10,.1f}{busy:>10,.1f}{slowdown:>9.2f}×")
        for setting in dict.fromkeys(s for m, s, _ in loaded if m == "threads"):
            used = {state: sorted(set(loaded["threads", setting, state])) for state in ("idle", "busy")}
            print(f"{'threads used, ' + setting:<44}{str(used['idle']):>10}{str(used['busy']):>10}")
    for name, factors in rtf.items():
        print(
            f"{'transcribe, ' + name:<42}{statistics.median(factors):>8,.0f}× real time (median; best "
            f"{max(factors):,.0f}×), {args.rtf_minutes:g}-minute wav → MIDI + csv"
        )
    if int8_agreement is not None:
        print(
            f"{'int8 against float (onnx)':<42}note F1 {int8_agreement[0]:.3f} of its notes against float's, "
            f"probabilities within {int8_agreement[1]:.3f}"
        )
    for engine, seconds in startup.items():
        print(
            f"{'start-up, ' + engine:<42}{statistics.median(seconds):>8.2f} s (median; best {min(seconds):.2f} s), "
            "amt transcribe of a two-second wav, command to files"
        )


if __name__ == "__main__":
    main()
