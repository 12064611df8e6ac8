"""What per-clip accuracy the detection target asks for: each committed model's posteriors on the
test clips, read at the thresholds a detector uses.

    python benchmarks/clip_thresholds.py [--models_dir models] [--format tflite_int8]
                                         [--test_dir ../shared/data/speech_commands_test_lite]

For each threshold T, on the test clips (without on and off, as the SC-lite-10 results):

* keyword recall: keyword clips whose own label's posterior is >= T;
* keyword confusion: keyword clips where another keyword's posterior is >= T;
* non-keyword accepts: ``_unknown_`` clips where any keyword's posterior is >= T.

"Clip FA/h" puts these rates on the streaming benchmark's 20 dB test recording (its keywords and
other words per hour, read from the model's ``detection.json``), each word one chance. It is a
view, not a bound: a stream shows every word at many offsets, so at one threshold it finds more
keywords than the centred clips do (the best offset) and makes more false accepts (more chances).
What it shows is the size of the keyword confusions: with about 1,000 keywords per hour, 1% of
them heard as another keyword is already 10 false accepts per hour, issue 23's whole budget.
Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kwsnb import data, models  # noqa: E402
from kwsnb import train as training  # noqa: E402
from kwsnb.models import seed  # noqa: E402
from kwsnb.notebooks.plots import softmax  # noqa: E402
from kwsnb.tflite.runtime import TFLiteModel, predict_non_stream, read_tflite  # noqa: E402

THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995, 0.9999)
BUDGET_FA_PER_HOUR = 10.0


def clip_rates(posteriors: np.ndarray, truth: np.ndarray, labels: list[str], keywords_per_hour:
               float, others_per_hour: float) -> list[dict]:
    """One row per threshold: recall, confusion, non-keyword accepts, clip FA/h."""
    keyword_ids = [i for i, label in enumerate(labels) if not label.startswith("_")]
    is_keyword = np.isin(truth, keyword_ids)
    is_other = truth == labels.index(data.UNKNOWN_WORD_LABEL)
    own = posteriors[np.arange(len(truth)), truth]
    rivals = posteriors[:, keyword_ids].copy()
    rivals[truth[:, None] == np.array(keyword_ids)[None]] = 0.0  # not the clip's own keyword
    rows = []
    for threshold in THRESHOLDS:
        recall = float(np.mean(own[is_keyword] >= threshold))
        confusion = float(np.mean(rivals[is_keyword].max(axis=1) >= threshold))
        other = float(np.mean(rivals[is_other].max(axis=1) >= threshold))
        rows.append({"threshold": threshold, "recall": recall, "confusion": confusion,
                     "other": other,
                     "fa_per_hour": keywords_per_hour * confusion + others_per_hour * other})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models_dir", type=Path, default=REPO / "models")
    parser.add_argument("--models", default=",".join(models.MODELS))
    parser.add_argument("--format", default="tflite_int8")
    parser.add_argument("--test_dir", type=Path,
                        default=REPO.parent / "shared" / "data" / "speech_commands_test_lite")
    args = parser.parse_args(argv)
    print("| model | clip miss % at <= 10 clip FA/h (T, confusion %, non-keyword %) "
          "| at T = 0.5: miss %, confusion %, non-keyword %, clip FA/h "
          "| streamed at the stored point: miss % / FA/h (20 dB) |")
    print("|---|---|---|---|")
    test_sets = {}  # labels -> (audio, truth): the folder is read once for models that share them
    for name in args.models.split(","):
        train_dir = args.models_dir / name
        detection_path = train_dir / "detection.json"
        if not detection_path.is_file():
            print(f"{name}: no {detection_path}: run benchmarks/streaming_detection.py first",
                  file=sys.stderr)
            return 2
        detection = json.loads(detection_path.read_text())["snr_db"]["20"]
        labels = list(training.load_flags(train_dir)["labels"])
        if tuple(labels) not in test_sets:
            test_sets[tuple(labels)] = data.read_test_folder(
                args.test_dir, labels, seed.SC_LITE10_TEST_EXCLUDE.split(","), progress=False)
        audio, truth = test_sets[tuple(labels)]
        model = TFLiteModel(read_tflite(train_dir / args.format / "model.tflite"), name)
        posteriors = softmax(predict_non_stream(model, audio))
        rows = clip_rates(posteriors, truth, labels,
                          detection["keyword_events"] / detection["hours"],
                          detection["other_events"] / detection["hours"])
        within = [row for row in rows if row["fa_per_hour"] <= BUDGET_FA_PER_HOUR]
        best = max(within, key=lambda row: row["recall"]) if within else None
        low = rows[0]
        print(f"| {name} | " + (f"{100 * (1 - best['recall']):.1f} ({best['threshold']:g}, "
                                f"{100 * best['confusion']:.2f}, {100 * best['other']:.1f})"
                                if best else "-")
              + f" | {100 * (1 - low['recall']):.1f}, {100 * low['confusion']:.2f}, "
                f"{100 * low['other']:.1f}, {low['fa_per_hour']:.0f} | "
                f"{100 * detection['miss_rate']:.1f} / {detection['false_accepts_per_hour']:.0f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
