"""Transcribe recordings with a published transcriber into amt note csvs (ID.notes.csv), timing each file.

Runs under the transcriber's own virtual environment (see scripts/compare.py), never the project's:
``.venv-transkun/bin/python scripts/peer_runner.py transkun OUT_DIR A.flac B.wav ...``. The model is
loaded once and warmed up on the first file (basic-pitch's numba compiles then), so the timings are of
transcription alone; they go to ``OUT_DIR/timings.json`` (seconds per recording id), merged with the
timings of files transcribed by an earlier run. Supported: basic-pitch (ICASSP 2022, ONNX model),
transkun (2.0 weights, piano), harmonica-amt (bundled ``medium`` model). Pedal events are left out:
notes keep their key-release offsets.
"""

import csv
import json
import sys
import time
from pathlib import Path


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
    system, out, files = sys.argv[1], Path(sys.argv[2]), [Path(p) for p in sys.argv[3:]]
    out.mkdir(parents=True, exist_ok=True)
    transcribe = SYSTEMS[system]()
    transcribe(files[0])  # warm-up: model and caches loaded, compiled code built
    timings_file = out / "timings.json"
    timings = json.loads(timings_file.read_text()) if timings_file.is_file() else {}
    for path in files:
        start = time.perf_counter()
        notes = transcribe(path)
        with (out / f"{path.stem}.notes.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["onset_s", "offset_s", "pitch", "velocity"])
            for onset, offset, pitch, velocity in sorted(notes):
                writer.writerow([f"{onset:.6f}", f"{offset:.6f}", pitch, velocity])
        timings[path.stem] = time.perf_counter() - start
        print(f"{system}: {path.name} in {timings[path.stem]:.1f} s", flush=True)
    timings_file.write_text(json.dumps(timings, indent=1))


if __name__ == "__main__":
    main()
