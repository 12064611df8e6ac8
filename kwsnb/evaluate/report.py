"""A train_dir's report: the formats older than its best weights exported again (one at a time,
staged, so a kill never leaves a cut model in use), every format scored
(``kwsnb.evaluate.formats``), ``report.json`` and ``report.txt`` written, what was not measured
this time kept from the previous report."""
from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Iterable, Sequence


from kwsnb.data.files import write_text_atomic
from kwsnb.evaluate.formats import (ALL_FORMATS, DEFAULT_STREAM_CLIPS, KERAS, STREAM_FAMILY,
                                    EvaluationError, _check_counts, _check_io, evaluate_formats)
from kwsnb.tflite import convert
from kwsnb.tflite import export as exporting
from kwsnb.tflite.runtime import (LATENCY_RUNS, LATENCY_WARMUP, METADATA_FILE, MODEL_FILE,
                                  ExportError, TFLiteModel, read_tflite)

REPORT_NAME = "report"


def failures(report: dict) -> dict[str, str]:
    """{format: why} for every format of ``report`` that failed: its export or scoring (an
    ``error`` entry), or TFLite Micro's check of a microcontroller format (``tflm.runs`` False;
    not checked, ``runs`` None, is no failure). A command that wrote such a report exits
    non-zero."""
    found = {}
    for name, entry in report.get("formats", {}).items():
        if entry.get("error"):
            found[name] = entry["error"]
        elif (entry.get("tflm") or {}).get("runs") is False:
            found[name] = f"TFLite Micro cannot run it: {entry['tflm'].get('error')}"
    return found

# ---------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------

def build_report(model_name: str, params: int, labels: Sequence[str], formats: dict[str, dict],
                 test_set: dict, latency_runs: int = LATENCY_RUNS) -> dict:
    """The report.json structure: model, params, labels, formats, plus how it was measured."""
    from importlib.metadata import version

    return {"model": model_name, "params": int(params), "labels": list(labels),
            "formats": formats, "test_set": test_set,
            "measurement": {
                "latency": f"median of {latency_runs} invoke() calls after {LATENCY_WARMUP} "
                           f"warm-up, 1 thread, ai-edge-litert {version('ai-edge-litert')}",
                "machine": f"{platform.machine()}, {_cpu_name()}",
                "created": time.strftime("%Y-%m-%dT%H:%M:%S")}}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def format_report(report: dict) -> str:
    """A readable table of a report."""
    test = report.get("test_set", {})
    lines = [f"{report['model']}: {report['params']:,} parameters, {len(report['labels'])} labels "
             f"({', '.join(report['labels'])})"]
    if test:
        excluded = f"; excluded {', '.join(test['exclude'])}" if test.get("exclude") else ""
        lines.append(f"test set: {test.get('name', '?')} ({test.get('clips', '?'):,} clips{excluded})")
    header = (f"{'format':<30} {'accuracy':>9} {'size KB':>9} {'latency ms':>11} "
              f"{'agreement':>10} {'primed':>8} {'TFLM arena KB':>13}")
    lines += ["", header, "-" * len(header)]
    for name, entry in report["formats"].items():
        if "error" in entry:
            lines.append(f"{name:<30} error: {entry['error']}")
            continue
        accuracy = f"{100 * entry['accuracy']:.2f}%"
        size = f"{entry['size_bytes'] / 1024:.1f}"
        latency = "-" if entry.get("latency_ms") is None else f"{entry['latency_ms']:.3f}"
        agreement = f"{100 * entry['agreement']:.2f}%" if "agreement" in entry else ""
        primed = (f"{100 * entry['agreement_primed']:.2f}%" if "agreement_primed" in entry
                  else "")
        tflm = entry.get("tflm")
        runs_in_tflm = ("" if tflm is None else "not checked" if tflm["runs"] is None
                        else "does not run" if not tflm["runs"]
                        else f"{tflm['arena_bytes'] / 1024:.1f}" if tflm.get("arena_bytes")
                        else "runs")
        lines.append(f"{name:<30} {accuracy:>9} {size:>9} {latency:>11} {agreement:>10} "
                     f"{primed:>8} {runs_in_tflm:>13}".rstrip())
    notes = []
    streams = [e for n, e in report["formats"].items() if n in STREAM_FAMILY and "clips" in e]
    if streams:
        notes.append(f"stream formats: {streams[0]['clips']:,} clips, "
                     f"{streams[0]['packets_per_clip']} packets each, states reset per clip; "
                     "latency per 20 ms packet; agreement = same prediction as the non-stream "
                     "model of the same precision; primed = the same, with the clip's first "
                     "packet put in the audio buffer (the non-stream model's exact frames)")
    front_end = [e["front_end_bytes"] for e in report["formats"].values()
                 if e.get("front_end_bytes")]
    if front_end:
        notes.append(f"sizes include the float front end's constants (window, mel filterbank, "
                     f"DCT): {max(front_end) / 1024:.1f} KB of each raw-audio model")
    features = report["formats"].get("tflite_features_int8", {})
    if "input_scale" in features:
        notes.append("tflite_features_int8 input: int8 = round((mfcc - coefficient_mean) * "
                     f"coefficient_scale / {features['input_scale']:.6g}) + "
                     f"{features['input_zero_point']} (the front end's normalization: in the "
                     "format's metadata.json)")
    failed = [f"{n}: {e['tflm']['error']}" for n, e in report["formats"].items()
              if e.get("tflm") and e["tflm"]["runs"] is not True]
    if any("tflm" in e for e in report["formats"].values()):
        notes.append("TFLM arena KB: the smallest tensor arena in which TensorFlow Lite Micro's "
                     "interpreter loads and runs the model (python -m kwsnb.micro writes it as C)"
                     + ("; " + "; ".join(failed) if failed else ""))
    notes.append("latency: " + report.get("measurement", {}).get("latency", ""))
    return "\n".join(lines + [""] + notes) + "\n"


def report_paths(train_dir: Path, test_dir: str | Path | None) -> tuple[Path, Path]:
    """report.json/.txt for the split; report_<folder name>.json/.txt for a test folder."""
    stem = REPORT_NAME if test_dir is None else f"{REPORT_NAME}_{_safe_name(Path(test_dir))}"
    return train_dir / f"{stem}.json", train_dir / f"{stem}.txt"


def _safe_name(path: Path) -> str:
    name = path.expanduser().resolve().name or "test"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# ---------------------------------------------------------------------------------------------
# A train_dir
# ---------------------------------------------------------------------------------------------

def evaluate_train_dir(train_dir: str | Path, test_dir: str | Path | None = None,
                       exclude: Iterable[str] = (), formats: Iterable[str] | None = None,
                       stream_clips: int | None = DEFAULT_STREAM_CLIPS, reexport: bool = False,
                       latency_runs: int = LATENCY_RUNS, progress: bool = True) -> dict:
    """Exports what is missing, evaluates every format and writes the report files.

    ``train_dir`` is what ``kwsnb.train`` writes (flags.json, best_weights.weights.h5).
    ``test_dir``: a folder in the official test-set layout instead of the testing split;
    ``exclude``: its label folders to leave out (e.g. go, on, off). Returns the report.
    """
    from kwsnb import train as training

    train_dir = Path(train_dir)
    _check_counts(stream_clips, latency_runs)  # before any file or data is read
    evaluate = functools.partial(_evaluate_train_dir, train_dir, test_dir, exclude, formats,
                                 stream_clips, reexport, latency_runs, progress)
    if not (train_dir / training.FLAGS_FILE).is_file():  # the error names it; nothing created
        return evaluate()
    with contextlib.ExitStack() as stack:
        try:  # a training or evaluation still writing the folder says so
            stack.enter_context(training.state.locked(train_dir, "evaluating"))
        except training.TrainError as error:
            raise EvaluationError(str(error)) from None
        for staging in train_dir.glob(".export-*"):  # left by a killed export (ours, never read)
            shutil.rmtree(staging, ignore_errors=True)
        return evaluate()


def _evaluate_train_dir(train_dir: Path, test_dir, exclude, formats, stream_clips, reexport,
                        latency_runs, progress) -> dict:
    from kwsnb import data, models
    from kwsnb import train as training

    train_dir = Path(train_dir)
    formats = list(ALL_FORMATS if formats is None else dict.fromkeys(formats))
    unknown = [f for f in formats if f not in ALL_FORMATS]
    if unknown:
        raise EvaluationError(f"unknown format(s) {', '.join(unknown)}; choose from "
                              f"{', '.join(ALL_FORMATS)}")
    try:
        model, flags = training.load_trained_model(train_dir)
    except training.TrainError as error:
        raise EvaluationError(str(error)) from None
    labels = list(flags.get("labels") or [])
    classes = int(model.outputs[0].shape[-1])
    if len(labels) != classes:
        raise EvaluationError(f"{train_dir / training.FLAGS_FILE} lists {len(labels)} labels but "
                              f"the {flags['model_name']} model has {classes} outputs: the "
                              "train_dir is inconsistent; retrain it")
    exclude = [w.strip().lower() for w in exclude if w.strip()]
    if exclude and test_dir is None:
        raise EvaluationError("--exclude leaves out folders of a test folder: give --test_dir")

    # Formats to export: missing, or older than the weights. The others are checked now, so a
    # corrupt file is reported before any data is read.
    tflite_formats = [f for f in formats if f != KERAS]
    needed = set(tflite_formats) | {STREAM_FAMILY[f] for f in tflite_formats if f in STREAM_FAMILY}
    weights_path = train_dir / training.BEST_WEIGHTS
    weights = exporting.weights_digest(weights_path)
    paths = {f: train_dir / f / MODEL_FILE for f in exporting.FORMATS if f in needed}
    to_export = [f for f, path in paths.items()
                 if reexport or _stale(path, weights, weights_path.stat().st_mtime)]
    clip_samples = int(model.inputs[0].shape[-1])
    for name, path in paths.items():
        if name not in to_export:
            _check_io(TFLiteModel(read_tflite(path), name), name, path, classes, clip_samples)

    dataset = None

    def training_data():
        nonlocal dataset
        if dataset is None:
            try:
                dataset = data.SpeechCommands.from_flags(flags, progress=progress)
            except (ValueError, FileNotFoundError) as error:
                raise EvaluationError(f"cannot read the data set of {train_dir} "
                                      f"(data_dir {flags.get('data_dir')!r}): {error}") from None
            if list(dataset.labels) != labels:
                raise EvaluationError(
                    f"{train_dir} was trained on labels {labels} but its data_dir now gives "
                    f"{list(dataset.labels)}; evaluate it on a test folder (--test_dir) or retrain")
        return dataset

    try:
        if test_dir is not None:
            audio, targets = data.read_test_folder(test_dir, labels, exclude, progress=progress)
            test_set = {"source": "folder", "name": Path(test_dir).name,
                        "path": str(Path(test_dir).resolve()), "clips": int(len(targets)),
                        "exclude": exclude}
        else:
            split = "testing"
            if not training_data().split_sizes[split]:  # e.g. an empty testing_list.txt
                split = "validation"
                warnings.warn(f"{flags['data_dir']} has no testing clips: scoring on the "
                              "validation split instead (give --test_dir for a real test set)",
                              stacklevel=2)
            audio, targets = training_data().arrays(split)
            test_set = {"source": "split", "name": f"{Path(flags['data_dir']).name} {split} split",
                        "path": str(Path(flags["data_dir"]).resolve()), "clips": int(len(targets)),
                        "exclude": []}
    except (ValueError, FileNotFoundError) as error:
        hint = "" if test_dir is not None else " (python -m kwsnb.evaluate: give --test_dir DIR)"
        raise EvaluationError(f"{error}{hint}") from None
    if not len(targets):
        raise EvaluationError(f"no test clips in {test_set['path']} (after excluding {exclude})")

    errors, stream_models = {}, {}
    if to_export:
        calibrated = [f for f in to_export if f in exporting.INT8_FORMATS]
        representative = convert.representative_audio(training_data()) if calibrated else None
        for name in to_export:  # one at a time: a format that fails is reported, not fatal
            try:
                if name in exporting.STREAM_FORMATS and not stream_models:
                    stream_models.update(_streaming_models(model))
                _export_format(model, train_dir, name, representative, labels, stream_models,
                               weights)
            except ExportError as error:
                errors[name] = str(error)
                warnings.warn(f"{name} not exported: {error}", stacklevel=2)
    paths = {name: path for name, path in paths.items() if name not in errors}
    results = evaluate_formats(model, audio, targets, paths,
                               [f for f in formats if f not in errors], stream_clips,
                               latency_runs, progress=progress)
    results.update({name: {"error": errors[name]} for name in formats if name in errors})
    results = {name: results[name] for name in formats}
    report = build_report(flags["model_name"], models.count_params(model), labels, results, test_set,
                          latency_runs)
    report["weights_sha256"] = weights
    json_path, text_path = report_paths(train_dir, test_dir)
    report = _keep_what_was_not_measured(report, json_path, weights_path)
    write_text_atomic(json_path, json.dumps(report, indent=2))
    write_text_atomic(text_path, format_report(report))
    return report


def _keep_what_was_not_measured(report: dict, json_path: Path, weights_path: Path) -> dict:
    """A partial evaluation (--formats, --latency_runs 0) updates the report it would replace,
    when that one measured the same weights on the same clips: the formats it did not evaluate
    and the latencies it did not measure are kept, so a full report never shrinks."""
    try:
        previous = json.loads(json_path.read_text())
        same_weights = previous.get("weights_sha256", report["weights_sha256"]) == \
            report["weights_sha256"] and (previous.get("weights_sha256") or
                                          json_path.stat().st_mtime >= weights_path.stat().st_mtime)
        same = same_weights and all(previous.get(key) == report[key]
                                    for key in ("model", "labels", "test_set"))
        old_formats = dict(previous["formats"])
    except (OSError, ValueError, KeyError, TypeError):
        return report
    if not same:
        return report
    formats = {**old_formats, **report["formats"]}
    kept_latency = False
    for name, entry in report["formats"].items():
        old = old_formats.get(name) or {}
        if "accuracy" in entry and entry.get("latency_ms") is None \
                and old.get("latency_ms") is not None:
            formats[name] = {**entry, "latency_ms": old["latency_ms"]}
            kept_latency = True
    measurement = dict(report["measurement"])
    if kept_latency:
        measurement["latency"] = previous.get("measurement", {}).get("latency")
    order = [f for f in ALL_FORMATS if f in formats]
    return {**report, "formats": {name: formats[name] for name in order},
            "measurement": measurement}


EXPORTING_MARKER = ".exporting"


def _export_format(model, train_dir: Path, name: str, representative, labels, stream_models,
                   weights_digest: str) -> None:
    """Exports one format into a staging folder, then moves its files into ``train_dir/name``
    under a marker: a kill at any moment leaves either the previous files or a marked folder
    that the next evaluation exports again (``_stale``), never a cut model.tflite in use."""
    staging = Path(tempfile.mkdtemp(prefix=f".export-{name}-", dir=train_dir))
    try:
        exporting.export(model, staging, representative, labels, formats=[name],
                         stream_models=stream_models or None)
        exporting.record_weights(staging / name, weights_digest)
        folder = train_dir / name
        folder.mkdir(exist_ok=True)
        marker = folder / EXPORTING_MARKER
        marker.write_text("export in progress: an evaluation exports this format again\n")
        for new in sorted((staging / name).iterdir(),  # metadata.json (the digest) last
                          key=lambda f: f.name == METADATA_FILE):
            os.replace(new, folder / new.name)
        marker.unlink()
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _stale(path: Path, weights_digest: str, weights_time: float) -> bool:
    """A format needs exporting when its folder is missing or it was exported from other
    weights. The weights' digest recorded at export decides (a fresh clone gives every file the
    same age); without one, file times do. A folder without its model is not re-exported
    silently: reading it names the file."""
    if not path.parent.is_dir() or (path.parent / EXPORTING_MARKER).exists():
        return True  # never exported, or a kill cut its export short
    if not path.is_file():
        return False
    recorded = exporting.recorded_weights(path.parent)
    if recorded is None:
        return path.stat().st_mtime < weights_time
    return recorded != weights_digest


def _streaming_models(model) -> dict:
    try:
        return exporting.streaming_models(model)
    except (ImportError, ValueError, NotImplementedError) as error:
        raise ExportError(f"cannot build the streaming models: {error}") from None


