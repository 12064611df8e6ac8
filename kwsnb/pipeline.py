"""The seed's whole job in one call: train, then export and evaluate every format.

``python -m kwsnb.train ARGV`` runs ``main`` (kwsnb/train/__main__.py); notebooks and scripts
call ``run(argv)``. It sits on top of ``kwsnb.train`` and ``kwsnb.evaluate`` so that neither
imports the other's stage.
"""
from __future__ import annotations

import sys
from typing import Any, Sequence

from kwsnb import evaluate
from kwsnb.tflite.runtime import LATENCY_RUNS, ExportError
from kwsnb.train import TrainError, evaluation_flags, is_chief, parse_command_line, train


def run(argv: Sequence[str], progress: bool | None = None) -> tuple[dict, list[dict]]:
    """What ``python -m kwsnb.train ARGV`` does, for notebooks and scripts: trains (or, with
    ``--train 0``, reloads), exports and evaluates. Returns (flags, reports); raises TrainError.
    ``kwsnb.models.seed.seed_command(...)`` makes ``argv`` from the seed's command lines."""
    flags = parse_command_line([str(arg) for arg in argv])
    flags = train(flags) if flags["train"] else evaluation_flags(flags)
    if not is_chief(flags):  # a multi-worker run's other workers: the chief evaluates
        return flags, []
    return flags, run_evaluation(flags, progress=progress)


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status: 0 when everything ran, 2 when training or evaluation stopped, 1 when a
    format failed (its export, scoring or TFLite Micro check; each is named)."""
    try:
        _, reports = run(sys.argv[1:] if argv is None else argv)
    except TrainError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failed = {}
    for report in reports:
        print(evaluate.format_report(report))
        failed.update(evaluate.failures(report))
    for name, why in failed.items():
        print(f"error: {name}: {why}", file=sys.stderr)
    return 1 if failed else 0


def run_evaluation(flags: dict[str, Any], progress: bool | None = None) -> list[dict]:
    """Exports every format and writes report.json (the data set's test split, or its
    validation split when it has no testing clips), then report_<folder>.json for
    ``--test_dir``. Returns the reports."""
    progress = sys.stderr.isatty() if progress is None else progress
    test_dirs = [None] + ([flags["test_dir"]] if flags.get("test_dir") else [])
    reports = []
    for test_dir in test_dirs:
        exclude = str(flags.get("test_exclude") or "").split(",") if test_dir else ()
        try:
            report = evaluate.evaluate_train_dir(
                flags["train_dir"], test_dir=test_dir, exclude=exclude, progress=progress,
                stream_clips=flags.get("stream_clips") or None,
                latency_runs=flags.get("latency_runs", LATENCY_RUNS))
        except (evaluate.EvaluationError, ExportError) as error:
            raise TrainError(str(error)) from None
        reports.append(report)
    return reports


if __name__ == "__main__":
    sys.exit(main())
