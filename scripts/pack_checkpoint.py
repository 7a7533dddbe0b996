"""A train.py checkpoint → a model to bundle or share: its weights and configs, nothing else.

    python scripts/pack_checkpoint.py RUN/checkpoints/BEST.ckpt amt/weights/default.ckpt

Keeps the model's weights (float16 unless ``--float32``: half the size, probabilities within about
0.004), its ``model_config`` and, when ``amt tune --save`` stored one, its ``decoder_config``, and
the epoch; drops the optimiser and scheduler states, callbacks and loops (two thirds of a
checkpoint). ``amt.transcribe.load_model`` reads the result as it reads any train.py checkpoint.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from amt.notes import write_atomically
from amt.transcribe import DECODER_CONFIG_KEY, load_model

KEPT_HYPERPARAMETERS = ("model_config", DECODER_CONFIG_KEY)


def pack(source: Path, target: Path, half: bool = True) -> None:
    load_model(source)  # refuses what amt could not load, with its own error
    checkpoint = torch.load(source, map_location="cpu", weights_only=False)
    weights = {k: v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    if half:
        weights = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    hyperparameters = checkpoint.get("hyper_parameters") or {}
    packed = {
        "state_dict": weights,
        "hyper_parameters": {k: hyperparameters[k] for k in KEPT_HYPERPARAMETERS if k in hyperparameters},
        "epoch": checkpoint.get("epoch"),
    }
    write_atomically(target, ".ckpt", lambda tmp: torch.save(packed, tmp))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a train.py checkpoint")
    parser.add_argument("target", type=Path)
    parser.add_argument("--float32", action="store_true", help="keep the weights in float32")
    args = parser.parse_args()
    pack(args.source, args.target, half=not args.float32)
    print(f"{args.target}: {args.target.stat().st_size / 1e6:.1f} MB (from {args.source.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
