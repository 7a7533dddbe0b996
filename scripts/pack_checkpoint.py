"""A train.py checkpoint → a model to bundle or share: its weights and configs, nothing else.

    python scripts/pack_checkpoint.py RUN/checkpoints/BEST.ckpt amt/weights/default.ckpt

Keeps the model's weights (float16 unless ``--float32``: half the size, probabilities within about
0.004), its ``model_config`` and, when ``amt tune --save`` stored one, its ``decoder_config``, and
the epoch; drops the optimiser and scheduler states, callbacks and loops (two thirds of a
checkpoint). :func:`amt.checkpoint.pack` does the work; ``amt.checkpoint.load`` reads the result as
it reads any train.py checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from amt.checkpoint import pack
from amt.errors import AmtError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a train.py checkpoint")
    parser.add_argument("target", type=Path)
    parser.add_argument("--float32", action="store_true", help="keep the weights in float32")
    args = parser.parse_args()
    try:
        pack(args.source, args.target, half=not args.float32)
    except AmtError as error:
        sys.exit(f"amt: error: {error}")
    print(f"{args.target}: {args.target.stat().st_size / 1e6:.1f} MB (from {args.source.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
