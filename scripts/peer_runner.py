"""Transcribe recordings with a published transcriber into amt note csvs (ID.notes.csv), timing each file.

Runs under the transcriber's own virtual environment (see scripts/compare.py), never the project's:
``.venv-transkun/bin/python scripts/peer_runner.py transkun OUT_DIR A.flac B.wav ...``. The model is
loaded once and warmed up on the first file (basic-pitch's numba compiles then), so the timings are of
transcription alone; they go to ``OUT_DIR/timings.json`` (seconds per recording id), and each
file's audio checksum to ``OUT_DIR/cache.json``, both merged with an earlier run's and rewritten after
every file, so an interrupted run keeps what it finished. A file whose notes are there for the same
audio (checksum) is not transcribed again. Supported: basic-pitch (ICASSP 2022, ONNX model),
transkun (2.0 weights, piano), harmonica-amt (bundled ``medium`` model). Pedal events are left out:
notes keep their key-release offsets.
"""

import csv
import hashlib
import json
import os
import sys
import time
from pathlib import Path


def checksum(path: Path) -> str:
    """The audio's sha256: a transcription is reused only for the same audio."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_json(path: Path, value: dict) -> None:
    temporary = path.with_suffix(".json.partial")
    temporary.write_text(json.dumps(value, indent=1))
    os.replace(temporary, path)


def basic_pitch():
    from basic_pitch import FilenameSuffix, build_icassp_2022_model_path
    from basic_pitch.inference import Model, predict

    model = Model(build_icassp_2022_model_path(FilenameSuffix.onnx))

    def transcribe(path: Path):
        _, _, notes = predict(str(path), model)
        return [(on, off, int(pitch), max(1, min(127, round(loudness * 127)))) for on, off, pitch, loudness, _ in notes]

    return transcribe


def transkun():
    import moduleconf
    import numpy as np
    import pkg_resources
    import soundfile
    import soxr
    import torch

    conf = moduleconf.parseFromFile(pkg_resources.resource_filename("transkun", "pretrained/2.0.conf"))
    model = conf["Model"].module.TransKun(conf=conf["Model"].config)
    checkpoint = torch.load(pkg_resources.resource_filename("transkun", "pretrained/2.0.pt"), map_location="cpu")
    model.load_state_dict(checkpoint.get("best_state_dict", checkpoint.get("state_dict")), strict=False)
    model.eval()
    torch.set_grad_enabled(False)

    def transcribe(path: Path):
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        if rate != model.fs:
            audio = soxr.resample(audio, rate, model.fs)
        notes = model.transcribe(torch.from_numpy(np.ascontiguousarray(audio)), discardSecondHalf=False)
        return [(n.start, n.end, int(n.pitch), int(n.velocity)) for n in notes if n.pitch > 0]

    return transcribe


def harmonica():
    from harmonica.inference import Harmonica

    model = Harmonica("medium", device="cpu")

    def transcribe(path: Path):
        notes = model.transcribe(str(path))
        velocities = [int(v) or 64 for v in notes.velocities]  # 0: the model has no velocity head
        return list(zip(notes.onsets.tolist(), notes.offsets.tolist(), notes.pitches.tolist(), velocities, strict=True))

    return transcribe


SYSTEMS = {"basic-pitch": basic_pitch, "transkun": transkun, "harmonica": harmonica}


def main() -> None:
    system, out, given = sys.argv[1], Path(sys.argv[2]), [Path(p) for p in sys.argv[3:]]
    out.mkdir(parents=True, exist_ok=True)
    timings_file, cache_file = out / "timings.json", out / "cache.json"
    timings = json.loads(timings_file.read_text()) if timings_file.is_file() else {}
    cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    done = {path for path in given if (out / f"{path.stem}.notes.csv").is_file() and path.stem in timings}
    files = [path for path in given if path not in done or cache.get(path.stem) != checksum(path)]
    print(f"{system}: {len(files)} of {len(given)} recordings to transcribe (the rest cached)", flush=True)
    if not files:
        return
    transcribe = SYSTEMS[system]()
    transcribe(files[0])  # warm-up: model and caches loaded, compiled code built
    for path in files:
        start = time.perf_counter()
        notes = transcribe(path)
        seconds = time.perf_counter() - start
        partial = out / f"{path.stem}.notes.csv.partial"
        with partial.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["onset_s", "offset_s", "pitch", "velocity"])
            for onset, offset, pitch, velocity in sorted(notes):
                writer.writerow([f"{onset:.6f}", f"{offset:.6f}", pitch, velocity])
        os.replace(partial, out / f"{path.stem}.notes.csv")
        timings[path.stem], cache[path.stem] = seconds, checksum(path)
        write_json(timings_file, timings)
        write_json(cache_file, cache)
        print(f"{system}: {path.name} in {seconds:.1f} s", flush=True)


if __name__ == "__main__":
    main()
