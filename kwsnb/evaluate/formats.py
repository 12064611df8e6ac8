"""Every format of a model scored on the same clips: accuracy, agreement of the stream formats
with their non-stream family, size, latency, and whether TFLite Micro runs the features-in model
(the measures are described in ``kwsnb.evaluate``)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np

from kwsnb import streaming
from kwsnb.tflite import convert
from kwsnb.tflite import export as exporting
from kwsnb.tflite.runtime import (LATENCY_RUNS, METADATA_FILE, TFLiteModel, check_io,
                                  predict_non_stream, read_tflite, stream_runner)

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
    (``kwsnb.tflite.export.export``'s result). Returns {format: entry} (see the module docstring).
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
        metadata_path = Path(tflite_paths[name]).parent / METADATA_FILE
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
                stream = stream_runner(runner, metadata)
                logits = stream.run_clips(audio[subset], prime=bool(
                    prime_audio_state and metadata.get("audio_state")), progress=progress)
                entry["primed"] = bool(prime_audio_state and metadata.get("audio_state"))
                if metadata.get("audio_state") and not prime_audio_state:
                    # The same audio as the non-stream model sees (no half-zero first frame):
                    # what separates precision effects from the reset protocol's.
                    primed = stream.run_clips(audio[subset], prime=True,
                                              progress=progress).argmax(-1)
                    entry["agreement_primed"] = float(np.mean(primed == reference))
            else:
                logits = stream_runner(runner).run_clips(audio[subset], progress=progress)
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
    path = Path(tflite_path).parent / METADATA_FILE
    if not path.is_file():
        raise EvaluationError(f"{path} not found: it describes the stream model's states; export "
                              f"the format again: python -m kwsnb.evaluate {path.parent.parent} "
                              "--reexport")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise EvaluationError(f"{path} is not valid JSON ({error}); export the format again: "
                              f"python -m kwsnb.evaluate {path.parent.parent} --reexport") from None


