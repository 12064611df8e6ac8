"""The detector's operating point (smoothing, threshold): chosen on validation speech, stored with
the model in ``train_dir/detection.json``.

* ``tune`` streams the model over a long recording of *validation* words (never the recording
  that is scored) and takes ``kwsnb.evaluate.detect.choose_operating_point``'s setting: the fewest
  misses at <= 10 false accepts per hour.
* ``store`` writes it with the sha256 of the weights it was chosen for; ``stored`` reads it
  back and refuses (with a warning) one chosen for other weights, so that a retrained model
  never runs at its predecessor's threshold.
Users: the demo and ``benchmarks/streaming_detection.py`` (tune, store), the notebooks
(``kwsnb.notebooks.steps.operating_point``: stored, else tuned and stored) and the microphone
detector (stored).
"""
from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path

from kwsnb.data.long_audio import make_long_recording
from kwsnb.evaluate.detect import choose_operating_point, detect
from kwsnb.tflite.export import weights_digest
from kwsnb.train import BEST_WEIGHTS

DETECTION_FILE = "detection.json"
# 20 minutes: 10 false accepts per hour is then 3 false accepts, not a coin toss of one.
VALIDATION_SECONDS = 1200.0
MAX_FALSE_ACCEPTS_PER_HOUR = 10.0
VALIDATION_SEED = 1


def tune(model, audio, labels, label_names: Sequence[str], *, noise=None,
         duration_s: float = VALIDATION_SECONDS, noise_level: float = 0.1,
         max_false_accepts_per_hour: float = MAX_FALSE_ACCEPTS_PER_HOUR,
         seed: int = VALIDATION_SEED, progress: bool = False) -> dict:
    """Chooses the operating point of ``model`` (a streaming .tflite, its format folder or a
    Keras model) on a ``duration_s`` recording of the validation clips ``audio`` / ``labels``
    over ``noise`` at ``noise_level`` (0.1: 20 dB SNR). Returns it as ``choose_operating_point``
    does (its ``sweep`` for a plot), plus ``recording`` (how the recording was made)."""
    if not len(labels):
        raise ValueError("no validation clips to choose the detector's threshold on: give a "
                         "data set with a validation split")
    recording = make_long_recording(audio, labels, label_names, noise=noise,
                                    duration_s=duration_s, noise_level=noise_level, seed=seed)
    result = detect(model, recording, label_names, progress=progress)
    point = choose_operating_point(result, max_false_accepts_per_hour=max_false_accepts_per_hour)
    point["recording"] = {"duration_s": float(duration_s), "noise_level": float(noise_level),
                          "seed": int(seed), "words": len(recording.events)}
    return point


def _current_weights(train_dir: Path) -> str | None:
    path = Path(train_dir) / BEST_WEIGHTS
    return weights_digest(path) if path.is_file() else None


def store(train_dir, point: dict, **content) -> dict:
    """Writes ``train_dir/detection.json``: ``content`` (e.g. a scored run's summary), the
    operating point (without its sweep) and the digest of the weights it was chosen for.
    Returns the point as ``stored`` reads it back (with ``source``: the file)."""
    path = Path(train_dir) / DETECTION_FILE
    point = {key: value for key, value in point.items() if key != "sweep"}
    path.write_text(json.dumps({**content, "operating_point": point,
                                "weights_sha256": _current_weights(train_dir)}, indent=2))
    return {**point, "source": str(path)}


def stored(train_dir) -> dict | None:
    """The operating point in ``train_dir/detection.json`` (with ``source``: the file), or None
    when there is none or it was chosen for other weights (a warning says so)."""
    path = Path(train_dir) / DETECTION_FILE
    if not path.is_file():
        return None
    try:
        content = json.loads(path.read_text())
    except ValueError as error:
        warnings.warn(f"{path} is not JSON ({error}): the operating point is chosen again",
                      stacklevel=2)
        return None
    point = content.get("operating_point") or {}
    if "smoothing_ms" not in point or "threshold" not in point:
        return None
    recorded, current = content.get("weights_sha256"), _current_weights(train_dir)
    if recorded and current and recorded != current:
        warnings.warn(f"{path} was chosen for other weights than {Path(train_dir) / BEST_WEIGHTS}"
                      " (retrained since?): the operating point is chosen again", stacklevel=2)
        return None
    return {**point, "smoothing_ms": float(point["smoothing_ms"]),
            "threshold": float(point["threshold"]), "source": str(path)}
