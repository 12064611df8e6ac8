"""Accuracy, size and latency of every exported format; ``report.json`` and a text summary.

Command line::

    python -m kwsnb.evaluate TRAIN_DIR [--test_dir DIR] [--exclude go,on,off] [--json]
                                       [--formats keras,tflite_float,...] [--stream_clips N]
                                       [--reexport]

Without ``--test_dir`` the model is scored on the testing split of its own data set
(``flags.json``'s ``data_dir``) and the report goes to ``TRAIN_DIR/report.json``; with it, on a
folder in the official test-set layout (``_silence_/``, ``_unknown_/``, one folder per word) and
the report goes to ``TRAIN_DIR/report_<folder name>.json``. A ``.txt`` summary is written next to
each. Missing formats are exported first (into ``TRAIN_DIR/<format>/``, see ``kwsnb.export``), as
are formats older than the best weights.

What is measured:

* **accuracy** - share of clips whose argmax matches the label. Non-stream TFLite models run one
  clip per call (batch 1), as the seed's ``test.py`` does. ``tflite_features_int8`` gets its
  MFCCs from the model's float front end, quantized with the model's input scale and zero point.
* **stream formats** - the seed's ``reset1`` protocol: states zeroed per clip, all 50 packets
  of the clip fed (20 ms each), the prediction read after the last packet. The first frame is
  then half zeros (the audio ring buffer starts empty): models with valid padding never see it,
  causal ones (svdf_resnet) see it where the non-stream model sees zero padding, so their
  agreement can be slightly below 100%. ``prime_audio_state=True`` starts external-state models
  with the clip's first packet in the audio buffer instead (the stream then sees exactly the
  non-stream frames). ``agreement`` is the share of clips whose stream prediction equals the
  non-stream model's of the same precision (``agreement_with``); external-state formats also
  report ``agreement_primed``, the same measure on primed streams. Stream formats run on
  ``stream_clips`` clips drawn at random (every clip when None), recorded as ``clips``.
* **size_bytes** - the .tflite file; for ``keras`` the float32 weights.
* **latency_ms** - median of ``latency_runs`` single-threaded ``invoke()`` calls of LiteRT's
  interpreter after a warm-up, on a real clip (one packet for stream formats: per-packet
  latency). Not measured for ``keras`` (TensorFlow's eager overhead, not the model, would
  dominate; ``null`` in the report).
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from kwsnb import convert, streaming
from kwsnb import export as exporting
from kwsnb.runtime import (LATENCY_RUNS, LATENCY_WARMUP, ExportError, TFLiteModel, check_io,
                           predict_non_stream, predict_stream_external, predict_stream_internal,
                           read_tflite)

REPORT_NAME = "report"
KERAS = "keras"
ALL_FORMATS = (KERAS,) + exporting.FORMATS
# Stream format -> the non-stream format of the same precision (for ``agreement``).
STREAM_FAMILY = {
    "tflite_stream_external_float": "tflite_float",
    "tflite_stream_external_int8": "tflite_int8",
    "tflite_stream_internal_float": "tflite_float",
}
# Formats meant for microcontrollers: the report says whether TFLite Micro runs them.
TFLM_FORMATS = ("tflite_features_int8",)
DEFAULT_STREAM_CLIPS = 1000  # as the seed's TF streaming checks; None = every clip


class EvaluationError(RuntimeError):
    """A train_dir, test folder or option that cannot be evaluated, explained for the user."""


# ---------------------------------------------------------------------------------------------
# Running TFLite models
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Evaluating formats
# ---------------------------------------------------------------------------------------------

def keras_weight_bytes(model) -> int:
    """Bytes of the model's weights (float32 as trained)."""
    return int(sum(np.prod(v.shape) * np.dtype(v.dtype).itemsize for v in model.weights))


def stream_subset(count: int, stream_clips: int | None, seed: int = 0) -> np.ndarray:
    """Indices of the clips the stream formats run on: all, or a reproducible random subset
    (test sets are sorted by label, so the first N would miss labels)."""
    if stream_clips is None or stream_clips >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, stream_clips, replace=False))


def evaluate_formats(model, audio: np.ndarray, labels: np.ndarray,
                     tflite_paths: dict[str, Path], formats: Iterable[str] = ALL_FORMATS,
                     stream_clips: int | None = DEFAULT_STREAM_CLIPS,
                     latency_runs: int = LATENCY_RUNS, prime_audio_state: bool = False,
                     progress: bool = False) -> dict[str, dict]:
    """Accuracy, size and latency of each format on (audio [N, samples], labels [N]).

    ``model`` is the Keras non-stream model (for ``keras`` and for the float front end that
    feeds ``tflite_features_int8``); ``tflite_paths`` maps format names to .tflite files
    (``kwsnb.export.export``'s result). Returns {format: entry} (see the module docstring).
    """
    formats = list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in ALL_FORMATS]
    if unknown:
        raise EvaluationError(f"unknown format(s) {unknown}; choose from {list(ALL_FORMATS)}")
    _check_counts(stream_clips, latency_runs)
    missing = [f for f in formats if f != KERAS and f not in tflite_paths]
    if missing:
        raise EvaluationError(f"no .tflite file given for {missing}")
    audio = np.asarray(audio, np.float32)
    labels = np.asarray(labels)
    if len(audio) != len(labels) or not len(audio):
        raise EvaluationError(f"need clips and labels of the same nonzero length, got "
                              f"{len(audio)} clips and {len(labels)} labels")
    subset = stream_subset(len(audio), stream_clips)
    predictions: dict[str, np.ndarray] = {}  # format -> argmax on all clips (non-stream)
    results: dict[str, dict] = {}
    cached_features = []

    def features() -> np.ndarray:
        """MFCCs of every clip from the model's float front end (tflite_features_int8's input)."""
        if not cached_features:
            front_end, _ = streaming.split_front_end(model)
            cached_features.append(convert.predict_batches(front_end, audio))
        return cached_features[0]

    def non_stream_predictions(name: str) -> np.ndarray:
        if name not in predictions:
            if name == KERAS:
                predictions[name] = convert.predict_batches(model, audio).argmax(-1)
            else:
                inputs = features() if name == "tflite_features_int8" else audio
                predictions[name] = predict_non_stream(load(name), inputs, progress).argmax(-1)
        return predictions[name]

    loaded: dict[str, TFLiteModel] = {}

    classes = int(model.outputs[0].shape[-1])

    def load(name: str) -> TFLiteModel:
        if name not in loaded:
            loaded[name] = TFLiteModel(read_tflite(tflite_paths[name]), name)
            _check_io(loaded[name], name, tflite_paths[name], classes, audio.shape[1])
        return loaded[name]

    for name in formats:
        if name == KERAS:
            predicted = non_stream_predictions(KERAS)
            results[name] = {"accuracy": float(np.mean(predicted == labels)),
                             "size_bytes": keras_weight_bytes(model), "latency_ms": None,
                             "clips": int(len(labels))}
            continue
        runner = load(name)
        entry = {"size_bytes": Path(tflite_paths[name]).stat().st_size}
        metadata_path = Path(tflite_paths[name]).parent / exporting.METADATA_FILE
        if metadata_path.is_file():
            entry["front_end_bytes"] = _metadata(tflite_paths[name]).get("front_end_bytes")
        if name in TFLM_FORMATS:
            entry["tflm"] = _tflm_entry(tflite_paths[name])
        if name in exporting.STREAM_FORMATS:
            metadata = _metadata(tflite_paths[name])
            family = STREAM_FAMILY[name]
            if family not in tflite_paths:
                family = KERAS
            reference = non_stream_predictions(family)[subset]
            if name.startswith("tflite_stream_external"):
                logits = predict_stream_external(runner, audio[subset], metadata,
                                                 prime_audio_state, progress)
                entry["primed"] = bool(prime_audio_state and metadata.get("audio_state"))
                if metadata.get("audio_state") and not prime_audio_state:
                    # The same audio as the non-stream model sees (no half-zero first frame):
                    # what separates precision effects from the reset protocol's.
                    primed = predict_stream_external(runner, audio[subset], metadata, True,
                                                     progress).argmax(-1)
                    entry["agreement_primed"] = float(np.mean(primed == reference))
            else:
                logits = predict_stream_internal(runner, audio[subset], progress)
            predicted = logits.argmax(-1)
            entry.update(accuracy=float(np.mean(predicted == labels[subset])),
                         agreement=float(np.mean(predicted == reference)),
                         agreement_with=family, clips=int(len(subset)),
                         packets_per_clip=int(audio.shape[1] // metadata["packet_samples"]),
                         latency_per="packet")
            _set_stream_inputs(runner, audio[0], metadata)
        else:
            predicted = non_stream_predictions(name)
            entry.update(accuracy=float(np.mean(predicted == labels)), clips=int(len(labels)),
                         latency_per="clip")
            if name == "tflite_features_int8":
                details = runner.inputs[runner.input_name]
                scale, zero_point = details["quantization"]
                entry["input_scale"], entry["input_zero_point"] = float(scale), int(zero_point)
                runner.set(runner.input_name, features()[:1])
            else:
                runner.set(runner.input_name, audio[:1])
        entry["latency_ms"] = runner.latency_ms(latency_runs) if latency_runs else None
        results[name] = {key: entry[key] for key in ("accuracy", "size_bytes", "latency_ms")} | entry
    return results


def _check_counts(stream_clips: int | None, latency_runs: int) -> None:
    if stream_clips is not None and (int(stream_clips) != stream_clips or stream_clips < 1):
        raise EvaluationError(f"--stream_clips must be a positive number of clips (0 on the "
                              f"command line: all), got {stream_clips}")
    if int(latency_runs) != latency_runs or latency_runs < 0:
        raise EvaluationError(f"--latency_runs must be 0 (no latency) or more, got {latency_runs}")


def _set_stream_inputs(runner: TFLiteModel, clip: np.ndarray, metadata: dict) -> None:
    """Inputs for timing one packet: a real packet and (external state) zero states."""
    packet_name = metadata.get("packet_input", runner.input_name)
    packet_samples = int(runner.inputs[packet_name]["shape"][-1])
    runner.set(packet_name, clip[np.newaxis, :packet_samples])
    for state in metadata.get("states", []):
        runner.set(state["input"], np.zeros(runner.inputs[state["input"]]["shape"], np.float32))


def _check_io(runner: TFLiteModel, name: str, path: Path, classes: int, clip_samples: int):
    logits = _metadata(Path(path)).get("logits_output") if "stream_external" in name else None
    check_io(runner, path, classes, logits_output=logits,
             clip_samples=None if name in ("tflite_features_int8", *exporting.STREAM_FORMATS)
             else clip_samples)


def _tflm_entry(tflite_path: Path) -> dict:
    """Does the model run in TensorFlow Lite Micro's interpreter, and in how much arena (the
    smallest that loads and runs, ``kwsnb.micro.tflm_check``)? Never raises."""
    import importlib.util

    from kwsnb import micro

    if importlib.util.find_spec("tflite_micro") is None:
        return {"runs": None, "arena_bytes": None,
                "error": "not checked: pip install tflite-micro (TFLite Micro's interpreter)"}
    found = micro.tflm_check(Path(tflite_path))
    return {"runs": found["runs"],
            "arena_bytes": found.get("arena_min_bytes") or found.get("arena_bytes"),
            "error": found.get("error")}


def _metadata(tflite_path: Path) -> dict:
    path = Path(tflite_path).parent / exporting.METADATA_FILE
    if not path.is_file():
        raise EvaluationError(f"{path} not found: it describes the stream model's states; export "
                              f"the format again: python -m kwsnb.evaluate {path.parent.parent} "
                              "--reexport")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise EvaluationError(f"{path} is not valid JSON ({error}); export the format again: "
                              f"python -m kwsnb.evaluate {path.parent.parent} --reexport") from None


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
    weights = _digest(weights_path)
    paths = {f: train_dir / f / exporting.MODEL_FILE for f in exporting.FORMATS if f in needed}
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
        representative = _representative_audio(training_data()) if calibrated else None
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
    training.state.write_text_atomic(json_path, json.dumps(report, indent=2))
    training.state.write_text_atomic(text_path, format_report(report))
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
        _record_weights(staging / name, weights_digest)
        folder = train_dir / name
        folder.mkdir(exist_ok=True)
        marker = folder / EXPORTING_MARKER
        marker.write_text("export in progress: an evaluation exports this format again\n")
        for new in sorted((staging / name).iterdir(),  # metadata.json (the digest) last
                          key=lambda f: f.name == exporting.METADATA_FILE):
            os.replace(new, folder / new.name)
        marker.unlink()
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _stale(path: Path, weights_digest: str, weights_time: float) -> bool:
    """A format needs exporting when its folder is missing or it was exported from other
    weights. The weights' digest recorded at export decides (a fresh clone gives every file the
    same age); without one, file times do. A folder without its model is not re-exported
    silently: reading it names the file."""
    if not path.parent.is_dir() or (path.parent / EXPORTING_MARKER).exists():
        return True  # never exported, or a kill cut its export short
    if not path.is_file():
        return False
    try:
        recorded = json.loads((path.parent / exporting.METADATA_FILE).read_text())
        recorded = recorded.get("weights_sha256")
    except (OSError, ValueError):
        recorded = None
    if recorded is None:
        return path.stat().st_mtime < weights_time
    return recorded != weights_digest


def _record_weights(format_dir: Path, weights_digest: str) -> None:
    metadata = format_dir / exporting.METADATA_FILE
    content = json.loads(metadata.read_text()) if metadata.is_file() else {}
    metadata.write_text(json.dumps({**content, "weights_sha256": weights_digest}, indent=2))


def _streaming_models(model) -> dict:
    try:
        return exporting.streaming_models(model)
    except (ImportError, ValueError, NotImplementedError) as error:
        raise ExportError(f"cannot build the streaming models: {error}") from None


def _representative_audio(dataset, count: int = convert.REPRESENTATIVE_CLIPS) -> np.ndarray:
    """``count`` unaugmented training clips in a seeded random order."""
    batch = dataset.dataset("training", batch_size=count, augment=False, shuffle=True,
                            repeat=False, seed=0)
    audio, _ = next(iter(batch))
    return audio.numpy()


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
    return 0


if __name__ == "__main__":
    sys.exit(main())
