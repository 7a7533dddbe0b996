"""Transcribe wavs with basic-pitch (Spotify, ICASSP 2022) into amt note csvs (ID.notes.csv), timing each file.

Runs under basic-pitch's own virtual environment (see scripts/compare.py), never the project's:
``.venv-basic-pitch/bin/python scripts/basic_pitch_runner.py OUT_DIR A.wav B.wav ...``. The model
is loaded once and warmed up on the first file (numba compiles its note creation then), so the
timings are of transcription alone; they go to ``OUT_DIR/timings.json`` (seconds per recording id).
"""

import csv
import json
import sys
import time
from pathlib import Path

from basic_pitch import FilenameSuffix, build_icassp_2022_model_path
from basic_pitch.inference import Model, predict


def main() -> None:
    out, wavs = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
    out.mkdir(parents=True, exist_ok=True)
    model = Model(build_icassp_2022_model_path(FilenameSuffix.onnx))
    predict(str(wavs[0]), model)
    timings = {}
    for wav in wavs:
        start = time.perf_counter()
        _, _, notes = predict(str(wav), model)
        with (out / f"{wav.stem}.notes.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["onset_s", "offset_s", "pitch", "velocity"])
            for onset, offset, pitch, velocity, _ in sorted(notes):
                writer.writerow([f"{onset:.6f}", f"{offset:.6f}", int(pitch), max(1, min(127, round(velocity * 127)))])
        timings[wav.stem] = time.perf_counter() - start
    (out / "timings.json").write_text(json.dumps(timings, indent=1))


if __name__ == "__main__":
    main()
