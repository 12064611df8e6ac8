"""The seed's eight command lines end to end on any data folder, with only the steps cut.

    python benchmarks/seed_commands.py --data_dir DIR [--steps 300,300] [--wanted_words W,...]
                                       [--out runs/seed_commands] [--models svdf,tc_resnet]

For each architecture: ``kwsnb.models.seed.seed_command`` (the seed's command line with
``python -m kwsnb.train`` in place of its module, ``--how_many_training_steps`` /
``--learning_rate`` cut to ``--steps``), trained, exported to every TFLite format and evaluated,
as ``python -m kwsnb.train`` does. Checks that ``report.json`` holds every format without an
error and prints one line per model: wall time, float / int8 / stream-int8 accuracy on the
data folder's testing split. Exits 1 if any model fails.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kwsnb import evaluate, models, notebooks
from kwsnb.models import seed  # noqa: E402
from kwsnb import pipeline  # noqa: E402
from kwsnb import train as training  # noqa: E402


def run_one(name: str, data_dir: Path, out: Path, steps: str, wanted_words: str | None) -> str:
    learning_rates = notebooks.settings(False, steps).learning_rates  # the seed's, one per stage
    extra = ["--wanted_words", wanted_words] if wanted_words else []
    argv = seed.seed_command(name, str(data_dir), str(out), steps=steps,
                             learning_rates=learning_rates, extra=extra)
    started = time.monotonic()
    _, reports = pipeline.run(argv, progress=False)
    seconds = time.monotonic() - started
    formats = reports[-1]["formats"]
    missing = sorted(set(evaluate.ALL_FORMATS) - set(formats))
    failed = sorted(f for f, entry in formats.items() if "error" in entry)
    if missing or failed:
        raise RuntimeError(f"report.json lacks {missing} / has errors in {failed}")

    def percent(fmt: str) -> str:
        return f"{100 * formats[fmt]['accuracy']:.1f}"

    return (f"| {name} | {seconds:.0f} | {percent('tflite_float')} | {percent('tflite_int8')} "
            f"| {percent('tflite_stream_external_int8')} | {len(formats)} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", type=Path, required=True)
    parser.add_argument("--steps", default="300,300")
    parser.add_argument("--wanted_words", default=None)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "seed_commands")
    parser.add_argument("--models", default=",".join(models.ARCHITECTURES))
    args = parser.parse_args(argv)
    print(f"data: {args.data_dir}, steps {args.steps}\n")
    print("| model | seconds | float % | int8 % | stream int8 % | formats |\n|---|---|---|---|---|---|")
    failures = 0
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        try:
            print(run_one(name, args.data_dir, args.out, args.steps, args.wanted_words), flush=True)
        except (training.TrainError, RuntimeError) as error:
            failures += 1
            print(f"| {name} | failed: {error} |||||", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
