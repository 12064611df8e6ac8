"""``python -m kwsnb.micro TRAIN_DIR --out DIR``: both features-in int8 models of a train_dir as
.tflite, C source/header pairs, metadata and a README; exits non-zero when a model fails."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from kwsnb.micro.package import export_micro
from kwsnb.micro.runtime import MicroError
from kwsnb.tflite import convert
from kwsnb.tflite.export import ExportError

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kwsnb.micro",
        description="Write a trained model's features-in int8 models (non-stream and "
                    "streaming, for TensorFlow Lite Micro) as .tflite and C source/header "
                    "pairs with a README naming inputs, states and labels.")
    parser.add_argument("train_dir", help="a folder written by `python -m kwsnb.train`")
    parser.add_argument("--out", required=True, help="folder to write into")
    parser.add_argument("--data_dir", help="training data for int8 calibration "
                        "[the data_dir of TRAIN_DIR/flags.json]")
    parser.add_argument("--clips", type=int, default=convert.REPRESENTATIVE_CLIPS,
                        help="calibration clips [%(default)s]")
    parser.add_argument("--no_check", action="store_true",
                        help="skip running the models in TFLM (tflite-micro not installed)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        metadata = export_micro(args.train_dir, args.out, args.data_dir, args.clips,
                                check=not args.no_check)
    except (MicroError, ExportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failed = []
    for kind, meta in metadata.items():
        tflm = meta.get("tflm") or {}
        print(f"{kind}: {meta['size_bytes']} bytes"
              + (f", TFLM arena {tflm.get('arena_min_bytes')} bytes" if tflm.get("runs") else
                 f", TFLM: {tflm.get('error')}" if tflm else ""))
        if tflm and not tflm.get("runs"):
            failed.append(f"error: {kind} does not run in TFLite Micro: {tflm.get('error')}")
    print(f"written to {args.out}")
    for line in failed:
        print(line, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
