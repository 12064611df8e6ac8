"""SC-lite-10: all eight 30k architectures trained, quantized, streamed and compared on real speech.

The benchmark of ../shared/data/README.md: labels _silence_, _unknown_, yes, no, up, down, left,
right, stop, go; train and validate on speech_commands_lite; test on speech_commands_test_lite
with on and off left out (no training data for them). Each architecture runs its seed command
line (``kwsnb.models.seed``) with the schedule cut to fit a 2-core machine (``--steps`` /
``--learning_rates``), the noise levels raised to cover the test folder's loud silence and the
streaming-aware training of the preset (see RECIPE, ``kwsnb.models.seed.SC_LITE10_PRESETS``). After
training, ``benchmarks/streaming_detection.py`` chooses each model's detector operating point on a
validation-speaker recording and scores detection at 20 and 10 dB (``<arch>/detection.json``).
Results::

    models/<arch>/   flags.json, best_weights.weights.h5, report*.json/.txt, <format>/model.tflite,
                     detection.json (operating point + streaming detection numbers)
    docs/results_sc_lite10.md   the tables (+ docs/results_sc_lite10.png, the chart)

Resumable: an architecture whose test report exists is not trained again (a killed run resumes
from its last backup); one whose detection.json exists is not benchmarked again. Run::

    python benchmarks/sc_lite10.py [--models svdf,tc_resnet] [--data_root ../shared/data]
    python benchmarks/sc_lite10.py --reexport     # same weights, every format exported again
    python benchmarks/sc_lite10.py --preset baseline --models_dir ../exp/sc10_baseline

Presets (``--preset``; ``kwsnb.models.seed.SC_LITE10_PRESETS``, measured on tc_resnet in
docs/sc_lite10_findings.md):

* ``default``: the streaming recipe (``kwsnb.models.seed.STREAMING_FLAGS``) at 8,000 steps: the
  committed models.
* ``long``: the same at 16,000 steps (twice the time).
* ``baseline``: clips only, 10% unknown-word examples (the recipe before issue 23; 8,000 steps).

A preset's steps and flags go into the results doc's header. An architecture already trained in
``--models_dir`` with other recipe flags is refused, not reported as done.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kwsnb import evaluate, models
from kwsnb.models import seed  # noqa: E402
from kwsnb import pipeline  # noqa: E402
from kwsnb import train as training  # noqa: E402
from kwsnb.tflite.runtime import ExportError  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
import streaming_detection  # noqa: E402

WANTED_WORDS = seed.SC_LITE10_WORDS
EXCLUDE = seed.SC_LITE10_TEST_EXCLUDE
TEST_FOLDER = "speech_commands_test_lite"
# The recipe (kwsnb.models.seed): the seed's command line per architecture, then RECIPE (it wins), with
# a preset's steps, rates and flags.
RECIPE = seed.SC_LITE10_FLAGS
PRESETS = seed.SC_LITE10_PRESETS
preset_recipe = seed.sc_lite10_recipe


def _recipe_mismatch(flags: dict, steps: str, learning_rates: str, recipe: list[str]) -> list[str]:
    """The recipe flags a trained model's flags.json disagrees with (empty when it matches)."""
    from kwsnb.train.flags import _BASE_FLAGS, parse_flag_value

    wanted = {"how_many_training_steps": steps, "learning_rate": learning_rates,
              # absent from RECIPE means the flag's default
              "extra_unknown_percentage": "0", "use_spec_augment": "0",
              "unknown_with_replacement": "0", "unknown_percentage": "10",
              "stream_window_percentage": "0", "tts_unknown_words": ""}
    wanted.update({name[2:]: value for name, value in zip(recipe[::2], recipe[1::2])
                   if name.startswith("--")})
    wrong = []
    for name, value in wanted.items():
        if name in ("data_url", "extra_unknown_dir"):
            continue
        # a flag newer than the flags.json had its default
        saved = flags[name] if name in flags else _BASE_FLAGS.get(name, (None, None))[1]
        if saved is None:
            continue
        if (value.replace(" ", "") != saved.replace(" ", "") if isinstance(saved, str)
                else parse_flag_value(value, saved) != saved):
            wrong.append(f"{name}={saved!r} (recipe: {value!r})")
    return wrong


def report_name(test_dir: Path) -> str:
    return evaluate.report_paths(Path("."), test_dir)[0].name


def reexport_architecture(name: str, data_root: Path, models_dir: Path) -> dict:
    """Exports every format of a trained architecture again (after a change in export) and
    rewrites both reports; the weights stay as they are."""
    train_dir = models_dir / name
    started = time.monotonic()
    evaluate.evaluate_train_dir(train_dir, reexport=True, stream_clips=None, progress=False)
    report = evaluate.evaluate_train_dir(train_dir, test_dir=data_root / TEST_FOLDER,
                                         exclude=EXCLUDE.split(","), stream_clips=None,
                                         progress=False)
    print(f"{name}: re-exported and evaluated in {time.monotonic() - started:.0f} s", flush=True)
    return report


def train_architecture(name: str, data_root: Path, models_dir: Path, steps: str,
                       learning_rates: str, recipe: list[str] = RECIPE) -> dict:
    """Trains, exports and evaluates one architecture unless its test report exists (with the
    same recipe: one trained with other recipe flags is a TrainError)."""
    test_dir = data_root / TEST_FOLDER
    train_dir = models_dir / name
    report_path = train_dir / report_name(test_dir)
    if (train_dir / "flags.json").is_file():
        wrong = _recipe_mismatch(json.loads((train_dir / "flags.json").read_text()), steps,
                                 learning_rates, recipe)
        if wrong:
            raise training.TrainError(f"{train_dir} was trained with another recipe ("
                                      f"{', '.join(wrong)}): give another --models_dir")
    if report_path.is_file():
        print(f"{name}: done before ({report_path}), not trained again", flush=True)
        return json.loads(report_path.read_text())
    argv = seed.seed_command(name, str(data_root / "speech_commands_lite"), str(models_dir),
                             steps=steps, learning_rates=learning_rates,
                             extra=[*recipe, "--test_dir", str(test_dir),
                                    "--test_exclude", EXCLUDE, "--stream_clips", "0"])
    started = time.monotonic()
    print(f"{name}: python -m kwsnb.train {' '.join(argv)}", flush=True)
    flags, reports = pipeline.run(argv)
    print(f"{name}: finished in {time.monotonic() - started:.0f} s "
          f"(training {flags.get('training_seconds')} s)", flush=True)
    return reports[-1]


# ---------------------------------------------------------------------------------------------
# Table and chart
# ---------------------------------------------------------------------------------------------

def _percent(entry: dict | None) -> str:
    if not entry or entry.get("accuracy") is None:
        return "-"
    return f"{100 * entry['accuracy']:.1f}"


def _kb(entry: dict | None) -> str:
    return "-" if not entry or not entry.get("size_bytes") else f"{entry['size_bytes'] / 1024:.0f}"


def _tflm(entry: dict | None) -> str:
    """The smallest TFLite Micro arena of a features-in model, or why it does not run."""
    tflm = (entry or {}).get("tflm")
    if not tflm or tflm.get("runs") is None:
        return "-"
    if not tflm["runs"]:
        return "does not run"
    return f"{tflm['arena_bytes'] / 1024:.1f}" if tflm.get("arena_bytes") else "runs"


def _ms(entry: dict | None) -> str:
    return "-" if not entry or entry.get("latency_ms") is None else f"{entry['latency_ms']:.3f}"


def _agreement(entry: dict | None) -> str:
    """Share of clips where the stream's prediction is the non-stream model's: from a reset
    state (the seed's protocol) / primed with the clip's first packet (the same frames)."""
    if not entry or entry.get("agreement") is None:
        return "-"
    primed = entry.get("agreement_primed")
    return (f"{100 * entry['agreement']:.2f} / "
            f"{'-' if primed is None else f'{100 * primed:.2f}'}")


def collect(models_dir: Path, test_dir: Path) -> list[dict]:
    """One row per architecture with a test report, in the seed's table order."""
    rows = []
    for name in models.ARCHITECTURES:
        path = models_dir / name / report_name(test_dir)
        if not path.is_file():
            continue
        report = json.loads(path.read_text())
        model, flags = training.load_trained_model(models_dir / name)
        macs = models.count_macs(model)
        rows.append({"name": name, "report": report, "flags": flags, "model": model,
                     "macs": macs["body"] + macs["front_end"], "body_macs": macs["body"]})
    return rows


def markdown_table(rows: list[dict]) -> str:
    header = ("| model | params | MACs/clip (body) | float % | dynamic % | int8 % | stream int8 % "
              "| stream float agreement (reset / primed) | stream int8 agreement (reset / primed) "
              "| float KB (seed) | int8 KB (seed) | stream int8 KB | features int8 KB "
              "| TFLM arena KB | float ms | int8 ms | per-packet ms (ext. int8) "
              "| train min | published float % |\n" + "|---" * 19 + "|\n")
    lines = []
    for row in rows:
        f = row["report"]["formats"]
        stream = f.get("tflite_stream_external_int8", {})
        published = seed.PUBLISHED[row["name"]]
        lines.append(
            f"| {row['name']} | {row['report']['params']:,} | {row['body_macs']:,} "
            f"| {_percent(f.get('tflite_float'))} | {_percent(f.get('tflite_dynamic'))} "
            f"| {_percent(f.get('tflite_int8'))} | {_percent(stream)} "
            f"| {_agreement(f.get('tflite_stream_external_float'))} | {_agreement(stream)} "
            f"| {_kb(f.get('tflite_float'))} ({published['float_size_kb']}) "
            f"| {_kb(f.get('tflite_int8'))} ({published['quant_size_kb']}) | {_kb(stream)} "
            f"| {_kb(f.get('tflite_features_int8'))} | {_tflm(f.get('tflite_features_int8'))} "
            f"| {_ms(f.get('tflite_float'))} "
            f"| {_ms(f.get('tflite_int8'))} | {_ms(stream)} "
            f"| {row['flags'].get('training_seconds', 0) / 60:.1f} "
            f"| {published['float_accuracy']} |")
    return header + "\n".join(lines) + "\n"


def per_label_table(test_dir: Path, rows: list[dict]) -> str:
    """Accuracy per test label of each trained (float Keras) model: where the errors are."""
    import numpy as np

    from kwsnb import data
    from kwsnb.tflite import convert

    if not rows:
        return ""
    labels = rows[0]["report"]["labels"]
    audio, truth = data.read_test_folder(test_dir, labels, EXCLUDE.split(","), progress=False)
    lines = ["| model | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for row in rows:
        predicted = convert.predict_batches(row["model"], audio).argmax(-1)
        cells = [f"{100 * np.mean(predicted[truth == i] == i):.1f}" for i in range(len(labels))]
        lines.append(f"| {row['name']} | " + " | ".join(cells) + " |")
    counts = " | ".join(f"{int(np.sum(truth == i))}" for i in range(len(labels)))
    lines.append(f"| (clips) | {counts} |")
    return ("\n## Accuracy per label (float, %)\n\n" + "\n".join(lines) + "\n")


def baseline_line(models_dir: Path, test_dir: Path) -> str:
    """The peer baseline (benchmarks/simple_audio_baseline.py), when it has been run."""
    path = models_dir / "simple_audio_cnn" / report_name(test_dir)
    if not path.is_file():
        return ""
    report = json.loads(path.read_text())
    # Its data flags as it ran them, against the recipe's now: a recipe that changed after the
    # baseline was trained is said, not hidden.
    _, _, recipe = preset_recipe()
    ran = report.get("recipe", {}).get("flags", [])
    changed = [flag for flag in recipe if flag.startswith("--") and
               _flag_value(recipe, flag) != _flag_value(ran, flag)]
    how = ("trained the same way" if not changed else
           "trained with the recipe's data flags except " + ", ".join(f"`{flag}`" for flag in changed)
           + " (newer than its run)")
    return (f"\nPeer baseline, {how} (`python benchmarks/simple_audio_baseline.py`):"
            f" TensorFlow's simple-audio tutorial CNN, {report['params']:,} parameters, "
            f"{_percent(report['formats']['keras'])}% float (Keras) on the same test clips, "
            f"{report['training_seconds'] / 60:.1f} min of training.\n")


def _flag_value(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv[:-1] else None


def chart(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for row in rows:
        f = row["report"]["formats"]
        accuracy = 100 * f["tflite_int8"]["accuracy"]
        axes[0].scatter(f["tflite_int8"]["size_bytes"] / 1024, accuracy)
        axes[0].annotate(row["name"], (f["tflite_int8"]["size_bytes"] / 1024, accuracy),
                         fontsize=8, xytext=(3, 3), textcoords="offset points")
        axes[1].scatter(f["tflite_int8"]["latency_ms"], accuracy)
        axes[1].annotate(row["name"], (f["tflite_int8"]["latency_ms"], accuracy),
                         fontsize=8, xytext=(3, 3), textcoords="offset points")
    axes[0].set_xlabel("int8 TFLite size (KB, float front end included)")
    axes[1].set_xlabel("int8 latency per 1 s clip (ms, 1 thread)")
    for ax in axes:
        ax.set_ylabel("int8 accuracy on SC-lite-10 test (%)")
        ax.grid(alpha=0.3)
    fig.suptitle("SC-lite-10: the eight 30k architectures (kwsnb)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_results(models_dir: Path, test_dir: Path, command: str, steps: str,
                  learning_rates: str, recipe: list[str] = RECIPE,
                  preset: str = "default") -> Path:
    rows = collect(models_dir, test_dir)
    doc = REPO / "docs" / "results_sc_lite10.md"
    if not rows:
        return doc
    chart(rows, doc.with_suffix(".png"))
    test_set = rows[0]["report"].get("test_set", {})
    recipe = " ".join(arg or "''" for arg in recipe)
    doc.write_text(
        "# SC-lite-10 results\n\n"
        + ("" if preset == "default" else f"Recipe preset `{preset}`. ")
        + f"Produced by `{command}` (see its docstring for the recipe): the seed's command line "
        f"per architecture with `--how_many_training_steps {steps} --learning_rate "
        f"{learning_rates}` and `{recipe}`. Test set: "
        f"{test_set.get('name', TEST_FOLDER)} ({test_set.get('clips', '?')} clips, "
        f"{EXCLUDE} left out). Accuracies in %; latency is LiteRT, 1 thread, median; "
        "\"published\" is the seed's figure on the full Speech Commands V2 12-label task "
        "(80,000 steps), not this one. Sizes in KB, the seed's published size in parentheses; "
        "every raw-audio model carries its float MFCC front end (window, compact mel filterbank, "
        "DCT: 20-23 KB of constants, 18-21 KB in the int8 formats, which keep the mel weights as "
        "int16); "
        "features int8 is the body alone (int8 MFCCs in), and TFLM arena the "
        "smallest tensor arena TensorFlow Lite Micro's interpreter runs it in.\n\n"
        + markdown_table(rows) + baseline_line(models_dir, test_dir)
        + "\n![accuracy vs size and latency](results_sc_lite10.png)\n"
        + per_label_table(test_dir, rows)
        + detection_section(models_dir)
        + "\nWhat these numbers taught us, and what changed because of them: "
          "[sc_lite10_findings.md](sc_lite10_findings.md).\n")
    return doc


def detection_section(models_dir: Path) -> str:
    """The streaming detection table from each architecture's detection.json."""
    reports = {}
    for name in models.ARCHITECTURES:
        path = models_dir / name / "detection.json"
        if path.is_file():
            report = json.loads(path.read_text())
            if "snr_db" in report:  # written by benchmarks/streaming_detection.py
                reports[name] = report
    if not reports:
        return ""
    return ("\n## Streaming detection (int8 streaming TFLite)\n\n"
            f"`python benchmarks/streaming_detection.py` ({streaming_detection.MINUTES:g}-minute "
            "recordings, a word every 1-3 s over the official background noise): smoothing and "
            "threshold chosen on a recording of validation speakers at 20 dB (the fewest misses "
            f"at <= {streaming_detection.MAX_FA_PER_HOUR:g} false accepts per hour; \"budget not "
            "met\": no setting met it, the nearest was taken), then scored on held-out test "
            "speakers' words (every non-keyword word, on and off included; in parentheses the "
            "false accepts per hour without those two untrained words) at 20 and 10 dB SNR. "
            "MLPerf Tiny's streaming wake-word view: false rejections of 50 keywords and false "
            "detections in 20 minutes (its bar: <= 8 each).\n\n"
            + streaming_detection.markdown_table(reports))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(models.MODELS))
    parser.add_argument("--data_root", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--models_dir", type=Path, default=REPO / "models")
    parser.add_argument("--preset", default="default", choices=sorted(PRESETS),
                        help="the recipe (see the docstring) [default]")
    parser.add_argument("--steps", help="override the preset's steps, e.g. 3000,1000")
    parser.add_argument("--learning_rates", help="override the preset's learning rates")
    parser.add_argument("--table_only", action="store_true",
                        help="only rewrite docs/results_sc_lite10.md from the reports")
    parser.add_argument("--reexport", action="store_true",
                        help="keep the trained weights; export every format again and rewrite "
                             "the reports (after a change in export or quantization)")
    args = parser.parse_args(argv)
    # Paths relative to the repository go into flags.json, so the committed models/ folders
    # still find their data on another machine with ../shared beside the checkout.
    os.chdir(REPO)
    args.data_root = Path(os.path.relpath(args.data_root.resolve(), REPO))
    args.models_dir = Path(os.path.relpath(args.models_dir.resolve(), REPO))
    steps, learning_rates, recipe = preset_recipe(args.preset)
    args.steps = args.steps or steps
    args.learning_rates = args.learning_rates or learning_rates
    if not (args.data_root / "speech_commands_lite").is_dir():
        print(f"error: {args.data_root}/speech_commands_lite not found: give --data_root (the "
              "folder holding speech_commands_lite and speech_commands_test_lite)",
              file=sys.stderr)
        return 2
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        if args.table_only:
            break
        try:
            if args.reexport:
                reexport_architecture(name, args.data_root, args.models_dir)
            else:
                train_architecture(name, args.data_root, args.models_dir, args.steps,
                                   args.learning_rates, recipe)
            detection = args.models_dir / name / "detection.json"
            if args.reexport or not detection.is_file() or \
                    "snr_db" not in json.loads(detection.read_text()):
                started = time.monotonic()
                streaming_detection.benchmark_model(args.models_dir / name, args.data_root,
                                                    REPO / "runs" / "streaming_detection")
                print(f"{name}: streaming detection in {time.monotonic() - started:.0f} s",
                      flush=True)
        except (training.TrainError, evaluate.EvaluationError, ExportError, ValueError,
                FileNotFoundError) as error:
            print(f"{name}: error: {error}", file=sys.stderr)
    command = "python benchmarks/sc_lite10.py" + (
        "" if args.preset == "default" else f" --preset {args.preset}")
    doc = write_results(args.models_dir, args.data_root / TEST_FOLDER, command, args.steps,
                        args.learning_rates, recipe, args.preset)
    print(doc.read_text() if doc.is_file() else "no results yet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
