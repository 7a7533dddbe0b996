"""Bad input and faults, tried as a user would: one command per case, each classified by what it did.

    python scripts/fault_matrix.py --work /tmp/faults                 # this checkout
    python scripts/fault_matrix.py --work /tmp/faults-old --code OLD  # another checkout of amt (its tree)

Every case runs amt's own commands (``python -m amt.cli``, ``python train.py``) in a subprocess on
files it makes in ``--work`` (the tiny corpus, copies of recordings and checkpoints, damaged files,
a small and a read-only tmpfs where the machine can mount one). A case is classified as:

- ``lost``: a file that must survive (an input, labels, someone else's file) changed or vanished;
- ``ran code``: a checkpoint's payload ran (it wrote its evidence file);
- ``crash``: a Python traceback or a process killed by a signal;
- ``silent``: exit status 0 where the input is wrong (a wrong result reported as right);
- ``leftover``: something that must not be left behind is there (an empty output folder, a run
  folder, evidence that a checkpoint ran code);
- ``clean``: the expected outcome, in one ``amt: error:`` line (or argparse's) when it fails.

The table goes to stdout as markdown, with totals; ``--json`` writes every case's details.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile
import torch

REPO = Path(__file__).resolve().parent.parent
CHECKPOINT = REPO / "amt" / "weights" / "cnn_multi.ckpt"
"""A full train.py checkpoint of a window model (optimiser state included), bundled with amt."""
PACKED = REPO / "amt" / "weights" / "default.ckpt"


@dataclass
class Case:
    name: str
    kind: str
    command: list[str]
    should_fail: bool
    protected: list[Path] = field(default_factory=list)
    absent: list[Path] = field(default_factory=list)
    timeout: int = 300


@dataclass
class World:
    """The files the cases work on, made once."""

    work: Path
    code: Path
    env: dict[str, str]
    tiny: Path = field(init=False)

    def __post_init__(self):
        self.tiny = self.work / "data" / "synth-tiny"

    def amt(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "amt.cli", *map(str, args)]

    def train(self, *args: str) -> list[str]:
        run = self.work / "runs" / hashlib.sha1(" ".join(args).encode()).hexdigest()[:8]
        return [
            sys.executable,
            str(self.code / "train.py"),
            "logger=csv",
            "data.preset=tiny",
            *args,
            f"hydra.run.dir={run}",
        ]

    def folder(self, name: str) -> Path:
        folder = self.work / "cases" / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return folder

    def flat(self, name: str) -> Path:
        """The tiny corpus's test recordings as ID.wav + ID.csv in a fresh folder."""
        folder = self.folder(name)
        for wav in sorted((self.tiny / "recordings" / "test_data").glob("*.wav")):
            shutil.copy(wav, folder)
            shutil.copy(self.tiny / "recordings" / "test_labels" / f"{wav.stem}.csv", folder)
        return folder


MOUNTS = ("read-only", "small", "small-run")
"""The tmpfs folders the cases mount inside ``--work`` (unmounted when the matrix ends)."""


def mount(folder: Path, options: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["umount", str(folder)], capture_output=True)
    return (
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True).returncode
        == 0
    )


def scale_labels(csv: Path, factor: float) -> None:
    lines = csv.read_text().splitlines()
    out = [lines[0]]
    for line in lines[1:]:
        start, end, *rest = line.split(",")
        out.append(",".join([str(round(int(start) * factor)), str(round(int(end) * factor)), *rest]))
    csv.write_text("\n".join(out) + "\n")


def evil_checkpoints(folder: Path, evidence: Path) -> tuple[Path, Path]:
    """A pickle that would write ``evidence`` when loaded, and a model config naming ``os.system``."""

    class Payload:
        def __reduce__(self):
            return (open, (str(evidence), "w"))

    contents = torch.load(CHECKPOINT, weights_only=True)
    torch.save({**contents, "payload": Payload()}, folder / "pickle.ckpt")
    contents["hyper_parameters"]["model_config"] = {"_target_": "os.system", "command": f"touch {evidence}"}
    torch.save(contents, folder / "target.ckpt")
    return folder / "pickle.ckpt", folder / "target.ckpt"


def zeroed(folder: Path) -> Path:
    """The bundled checkpoint with 4 KB in its middle zeroed (inside its weights), as a bad sector would."""
    data = bytearray(CHECKPOINT.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = bytes(4096)
    (folder / "zeroed.ckpt").write_bytes(bytes(data))
    return folder / "zeroed.ckpt"


def cases(world: World) -> list[Case]:
    w, amt, train = world, world.amt, world.train
    recording = next((w.tiny / "recordings" / "test_data").glob("*.wav"))
    out: list[Case] = []

    take = w.folder("readme")
    shutil.copy(recording, take / "take.wav")
    shutil.copy(recording.parent.parent / "test_labels" / f"{recording.stem}.csv", take / "take.csv")
    out.append(
        Case(
            "README example: transcribe -o take.mid --labels take.csv",
            "data lost",
            amt("transcribe", take / "take.wav", "-o", take / "take.mid", "--labels", take / "take.csv"),
            False,
            [take / "take.csv"],
        )
    )
    flat = w.flat("flat-into-itself")
    out.append(
        Case(
            "transcribe DIR/*.wav -o DIR (flat layout)",
            "data lost",
            amt("transcribe", *sorted(flat.glob("*.wav")), "-o", flat),
            False,
            sorted(flat.glob("*.csv")),
        )
    )
    foreign = w.folder("synth-foreign")
    mine = foreign / "recordings" / "train_data" / "mine.wav"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"mine")
    out.append(
        Case(
            "data synth --out DIR with someone else's file in DIR/recordings",
            "data lost",
            amt("data", "synth", "--preset", "tiny", "--out", foreign),
            True,
            [mine],
        )
    )

    late = w.flat("labels-past-the-end")
    scale_labels(sorted(late.glob("*.csv"))[0], 1000)
    out.append(
        Case(
            "evaluate: labels lying an hour past the audio",
            "wrong result",
            amt("evaluate", late, "--ckpt", CHECKPOINT),
            True,
        )
    )
    samples = w.flat("predictions-in-samples")
    predictions = w.folder("predictions-in-samples-csvs")
    for csv in samples.glob("*.csv"):
        rows = csv.read_text().splitlines()[1:]
        notes = [f"{int(r.split(',')[0])}.0,{int(r.split(',')[1])}.0,{r.split(',')[3]},100" for r in rows]
        (predictions / csv.name).write_text("onset_s,offset_s,pitch,velocity\n" + "\n".join(notes) + "\n")
    out.append(
        Case(
            "evaluate: prediction csvs in samples, not seconds",
            "wrong result",
            amt("evaluate", samples, "--predictions", predictions),
            True,
        )
    )
    out.append(
        Case(
            "data synth --soundfont naming a missing file",
            "wrong result",
            amt("data", "synth", "--preset", "tiny", "--out", w.folder("sf") / "c", "--soundfont", w.work / "none.sf2"),
            True,
        )
    )
    out.append(
        Case(
            "transcribe --hop far beyond the recording",
            "wrong result",
            amt("transcribe", recording, "-o", w.folder("hop"), "--ckpt", CHECKPOINT, "--hop", "10000000"),
            True,
        )
    )
    for override in ("trainer.max_epochs=0", "test=maybe", "+foo=1"):
        out.append(Case(f"train.py {override}", "wrong result", train("model=cnn_1layer", override), True))
    out.append(
        Case(
            "transcribe --ckpt with a zeroed region",
            "wrong result",
            amt("transcribe", recording, "-o", w.folder("zeroed-out"), "--ckpt", zeroed(w.folder("zeroed"))),
            True,
        )
    )

    if mount(w.work / "read-only", "ro,size=64k"):
        out.append(
            Case(
                "transcribe -o into a read-only folder",
                "traceback",
                amt("transcribe", recording, "-o", w.work / "read-only" / "out", "--ckpt", CHECKPOINT),
                True,
            )
        )
        out.append(
            Case(
                "data synth --out a read-only folder",
                "traceback",
                amt("data", "synth", "--preset", "tiny", "--out", w.work / "read-only" / "c"),
                True,
            )
        )
        run = w.work / "read-only" / "run"
        out.append(Case("train.py into a read-only folder", "traceback", [*train()[:-1], f"hydra.run.dir={run}"], True))
    if mount(w.work / "small", "size=256k"):
        out.append(
            Case(
                "data synth on a full disk",
                "traceback",
                amt("data", "synth", "--preset", "tiny", "--out", w.work / "small" / "c"),
                True,
            )
        )
        out.append(
            Case(
                "data spectra on a full disk",
                "traceback",
                amt("data", "spectra", w.tiny / "windows", "--bins", "512", "--out", w.work / "small" / "s"),
                True,
            )
        )
    if mount(w.work / "small-run", "size=150k"):
        run = w.work / "small-run" / "run"
        out.append(
            Case(
                "train.py on a disk that fills up",
                "traceback",
                [*train("model=cnn_1layer", "trainer.max_epochs=2")[:-1], f"hydra.run.dir={run}"],
                True,
                absent=[run / "checkpoints" / "last.ckpt"],
            )
        )
    binary = w.flat("binary-labels")
    sorted(binary.glob("*.csv"))[0].write_bytes(b"\xff\xfe\x00\x00binary\x00")
    out.append(Case("evaluate: a binary label csv", "traceback", amt("evaluate", binary, "--ckpt", CHECKPOINT), True))
    midi = w.folder("midi-labels") / "take.mid"
    midi.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\x00\x04\x00\xff\x2f\x00")
    out.append(
        Case(
            "transcribe --labels a MIDI file",
            "traceback",
            amt("transcribe", recording, "-o", midi.parent / "o", "--labels", midi, "--ckpt", CHECKPOINT),
            True,
        )
    )
    one_hz = w.folder("one-hertz") / "one-hertz.wav"
    soundfile.write(one_hz, np.zeros(100_000, dtype=np.float32), 1)
    out.append(
        Case(
            "transcribe a wav declaring 1 Hz",
            "traceback",
            amt("transcribe", one_hz, "-o", one_hz.parent / "o", "--ckpt", CHECKPOINT),
            True,
        )
    )
    for override in ("optimizer.lr=-1", "seed=abc", "data.batch_size=abc", "data.datamodule.num_workers=-1"):
        out.append(Case(f"train.py {override}", "traceback", train("model=cnn_1layer", override), True))
    broken = w.folder("ckpts")
    (broken / "truncated.ckpt").write_bytes(CHECKPOINT.read_bytes()[:20_000])
    (broken / "random.ckpt").write_bytes(os.urandom(20_000))
    resume = {
        "missing": broken / "missing.ckpt",
        "truncated": broken / "truncated.ckpt",
        "random bytes": broken / "random.ckpt",
        "another architecture": CHECKPOINT,
        "the bundled default.ckpt": PACKED,
    }
    for what, path in resume.items():
        out.append(
            Case(f"train.py ckpt_path= {what}", "traceback", train("model=cnn_1layer", f"ckpt_path={path}"), True)
        )
    out.append(
        Case(
            "train.py ckpt_path= with max_epochs below its epoch",
            "traceback",
            train("model=cnn_multi", "trainer.max_epochs=1", f"ckpt_path={CHECKPOINT}"),
            True,
        )
    )
    for option, value in (("--on", "nan"), ("--off", "inf"), ("--min-note-s", "1e308")):
        out.append(
            Case(
                f"transcribe {option} {value}",
                "traceback",
                amt("transcribe", recording, "-o", w.folder(f"opt{option}"), "--ckpt", CHECKPOINT, option, value),
                True,
            )
        )
    caches = w.folder("caches")
    shutil.copytree(w.tiny / "windows", caches / "windows")
    subprocess.run(
        amt("data", "spectra", caches / "windows", "--bins", "64", "--out", caches / "s0"),
        env=w.env,
        cwd=w.code,
        capture_output=True,
    )
    cache = next((caches / "windows").glob("spectra-train-64*.npy"), None)
    if cache is not None:
        cache.write_bytes(cache.read_bytes()[:500])
        out.append(
            Case(
                "data spectra over a truncated spectra cache",
                "traceback",
                amt("data", "spectra", caches / "windows", "--bins", "64", "--out", caches / "s1"),
                False,
            )
        )
    damaged = w.flat("damaged-recording")
    sorted(damaged.glob("*.wav"))[0].write_bytes(b"RIFF....WAVEfmt garbage")
    out.append(
        Case(
            "evaluate: a damaged recording among good ones",
            "traceback",
            amt("evaluate", damaged, "--ckpt", CHECKPOINT),
            True,
        )
    )

    for what, which in (("a pickle that writes a file", 0), ("a _target_ of os.system", 1)):
        evidence = w.work / f"pwned-{which}"
        evidence.unlink(missing_ok=True)
        path = evil_checkpoints(w.folder(f"evil-{which}"), evidence)[which]
        out.append(
            Case(
                f"transcribe --ckpt {what}",
                "checkpoint is code",
                amt("transcribe", recording, "-o", w.folder("evil-out"), "--ckpt", path),
                True,
                absent=[evidence],
            )
        )

    new = w.work / "cases" / "never-made" / "out"
    shutil.rmtree(new.parent, ignore_errors=True)
    noise = w.folder("noise") / "noise.wav"
    noise.write_text("not audio")
    out.append(
        Case(
            "transcribe an unreadable file -o a new folder",
            "leftovers",
            amt("transcribe", noise, "-o", new, "--ckpt", CHECKPOINT),
            True,
            absent=[new.parent],
        )
    )
    run = w.work / "runs" / "refused"
    out.append(
        Case(
            "train.py refused at start (seed=abc)",
            "leftovers",
            [*train("seed=abc")[:-1], f"hydra.run.dir={run}"],
            True,
            absent=[run],
        )
    )
    return out


def digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def classify(case: Case, world: World) -> dict:
    before = {path: digest(path) for path in case.protected}
    try:
        result = subprocess.run(
            case.command, cwd=world.code, env=world.env, capture_output=True, text=True, timeout=case.timeout
        )
        status, stderr = result.returncode, result.stderr
    except subprocess.TimeoutExpired:
        status, stderr = None, "timed out"
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("amt: error:") or ": error: argument" in line]
    if any(digest(path) != value for path, value in before.items()):
        verdict = "lost"
    elif any(path.exists() for path in case.absent if "pwned" in path.name):
        verdict = "ran code"
    elif status is None or status < 0 or "Traceback (most recent call last)" in stderr:
        verdict = "crash"
    elif case.should_fail and status == 0:
        verdict = "silent"
    elif any(path.exists() for path in case.absent):
        verdict = "leftover"
    elif (status != 0) != case.should_fail or (status != 0 and not errors):
        verdict = "crash" if status != 0 else "silent"
    else:
        verdict = "clean"
    return {
        "case": case.name,
        "kind": case.kind,
        "exit": status,
        "verdict": verdict,
        "message": (errors or lines or [""])[-1][:160],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="a scratch folder for the cases' files")
    parser.add_argument("--code", type=Path, default=REPO, help="the amt checkout to try (default: this one)")
    parser.add_argument("--json", type=Path, help="write every case's details here")
    args = parser.parse_args()
    env = {
        **os.environ,
        "PYTHONPATH": str(args.code.resolve()),
        "WANDB_MODE": "offline",
        "HYDRA_FULL_ERROR": "0",
        "AMT_DATA_DIR": str((args.work / "data").resolve()),
        "AMT_OUTPUT_DIR": str((args.work / "outputs").resolve()),
    }
    world = World(args.work.resolve(), args.code.resolve(), env)
    if not (world.tiny / "corpus.json").is_file():
        subprocess.run(
            world.amt("data", "synth", "--preset", "tiny", "--out", world.tiny),
            env=env,
            cwd=REPO,
            check=True,
            capture_output=True,
        )
    rows = []
    try:
        for case in cases(world):
            rows.append(classify(case, world))
            print(f"{rows[-1]['verdict']:>8}  {case.name}", file=sys.stderr, flush=True)
    finally:
        for name in MOUNTS:
            subprocess.run(["umount", str(world.work / name)], capture_output=True)
    print("| kind | case | exit | verdict | last line |\n| --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['kind']} | {row['case']} | {row['exit']} | {row['verdict']} | `{row['message']}` |")
    totals = Counter(row["verdict"] for row in rows)
    print(
        "\n"
        + ", ".join(
            f"{verdict}: {totals[verdict]}" for verdict in ("clean", "crash", "silent", "lost", "leftover", "ran code")
        )
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
