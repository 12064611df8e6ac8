"""``python -m kwsnb.evaluate TRAIN_DIR``: export what is stale, score every format, write the
report; exits non-zero when an export, a score or the TFLite Micro check failed."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from kwsnb.evaluate.formats import ALL_FORMATS, DEFAULT_STREAM_CLIPS, EvaluationError
from kwsnb.evaluate.report import evaluate_train_dir, failures, format_report
from kwsnb.tflite.runtime import LATENCY_RUNS, ExportError

# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kwsnb.evaluate",
        description="Export a trained kwsnb model to every TFLite format and report accuracy, "
                    "size and latency of each (TRAIN_DIR/report.json and report.txt).")
    parser.add_argument("train_dir", help="a folder written by `python -m kwsnb.train`")
    parser.add_argument("--test_dir", help="a folder in the official test-set layout "
                        "(_silence_, _unknown_, one folder per word) instead of the testing split")
    parser.add_argument("--exclude", default="", help="comma-separated label folders of "
                        "--test_dir to leave out, e.g. go,on,off")
    parser.add_argument("--formats", default=",".join(ALL_FORMATS),
                        help="comma-separated formats to evaluate [all]")
    parser.add_argument("--stream_clips", type=int, default=DEFAULT_STREAM_CLIPS,
                        help="clips the stream formats run on (0: all) [%(default)s]")
    parser.add_argument("--latency_runs", type=int, default=LATENCY_RUNS,
                        help="invocations per latency median (0: skip) [%(default)s]")
    parser.add_argument("--reexport", action="store_true",
                        help="export every format again even if its .tflite exists")
    parser.add_argument("--json", action="store_true",
                        help="print the report as JSON on standard output (the table goes to "
                             "standard error)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    try:
        report = evaluate_train_dir(
            args.train_dir, test_dir=args.test_dir, exclude=args.exclude.split(","),
            formats=formats, stream_clips=args.stream_clips or None, reexport=args.reexport,
            latency_runs=args.latency_runs, progress=sys.stderr.isatty())
    except (EvaluationError, ExportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    text = format_report(report)
    if args.json:
        print(text, file=sys.stderr)
        print(json.dumps(report, indent=2))
    else:
        print(text)
    failed = failures(report)
    for name, why in failed.items():
        print(f"error: {name}: {why}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
