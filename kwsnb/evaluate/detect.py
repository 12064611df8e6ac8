"""Keyword detection over long audio: false accepts per hour and miss rate of a streaming model.

The measure a wake-word user needs: stream a model over minutes of audio in which words sit at
known places (``kwsnb.data.long_audio``), turn its posteriors into detections (smoothing, threshold,
suppression) and count hits, misses and false accepts (``detect``, ``DetectionResult`` with a
timeline ``plot``; ``rescore`` and ``sweep_thresholds`` re-threshold one run). Decisions:

* A keyword fires when its smoothed posterior is at or above the threshold, it has been below
  it since it last fired (one detection per excursion) and no detection happened in the last
  ``suppression_ms``. Several keywords ready in one packet: the highest wins.
* False accepts per hour divide by the whole recording's duration.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from kwsnb import models
from kwsnb.data.long_audio import LongRecording, mono_audio
from kwsnb.layers import Mode
from kwsnb.streaming import StreamRunner, to_stream_external
from kwsnb.tflite.export import NON_STREAM_FORMATS, STREAM_FORMATS
from kwsnb.tflite.runtime import open_stream


DEFAULT_TOLERANCE_S = 0.5


DEFAULT_IGNORE = ("_silence_", "_unknown_")  # kwsnb.data's SILENCE_LABEL, UNKNOWN_WORD_LABEL


def open_stream_of(model) -> tuple[StreamRunner, list[str] | None, int]:
    """(runner, labels from metadata.json or None, sample rate) of a Keras model in any mode (run
    as an external-state stream) or a streaming .tflite / its format folder."""
    if isinstance(model, keras.Model):
        found = models.spec(model)
        if found.mode != Mode.STREAM_EXTERNAL_STATE_INFERENCE:
            model = to_stream_external(model)
        return StreamRunner(model), None, int(found.flags.get("sample_rate", 16000))
    if isinstance(model, (str, Path, bytes, bytearray)):
        runner, metadata = open_stream(model, NON_STREAM_FORMATS, STREAM_FORMATS)
        return (runner, metadata.get("labels"),
                int(metadata.get("feature_flags", {}).get("sample_rate", 16000)))
    raise TypeError(f"model must be a kwsnb Keras model or the path of a streaming .tflite (or "
                    f"its format folder), not {type(model).__name__}")


def smooth_posteriors(posteriors: np.ndarray, smoothing_ms: float,
                      packet_ms: float = 20.0) -> np.ndarray:
    """Trailing moving average over ``smoothing_ms`` (``round(smoothing_ms / packet_ms)``
    packets, at least 1); the first packets average what there is so far."""
    if smoothing_ms < 0:
        raise ValueError(f"smoothing_ms must be >= 0, got {smoothing_ms}")
    posteriors = np.asarray(posteriors, np.float64)
    window = max(1, int(round(smoothing_ms / packet_ms)))
    sums = np.concatenate([np.zeros((1,) + posteriors.shape[1:]), np.cumsum(posteriors, axis=0)])
    ends = np.arange(1, len(posteriors) + 1)
    starts = np.maximum(0, ends - window)
    return ((sums[ends] - sums[starts]) / (ends - starts)[:, np.newaxis]).astype(np.float32)


def check_settings(*, threshold: float, suppression_ms: float = 0.0,
                   smoothing_ms: float = 0.0) -> None:
    """ValueError for a detector setting that would silently detect nothing or everything
    (sweeps may still probe a threshold above 1: the detector that never fires)."""
    if not 0.0 < threshold <= 1.0:  # posteriors are probabilities: above 1 nothing ever fires
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    for name, value in (("suppression_ms", suppression_ms), ("smoothing_ms", smoothing_ms)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")


def find_detections(times_s: np.ndarray, posteriors: np.ndarray, label_names: Sequence[str], *,
                    threshold: float, suppression_ms: float = 1000.0,
                    ignore: Sequence[str] = DEFAULT_IGNORE) -> list[tuple[float, str, float]]:
    """(time_s, label, score) of every detection in smoothed ``posteriors`` [packets, labels].

    A keyword (label not in ``ignore``) fires at a packet where its posterior is >= threshold,
    if it has been below the threshold since it last fired and no detection of any keyword
    happened in the preceding ``suppression_ms``; the highest of several ready keywords wins.
    """
    times_s = np.asarray(times_s, np.float64)
    posteriors = np.asarray(posteriors)
    keyword_ids = [i for i, name in enumerate(label_names) if name not in set(ignore)]
    if posteriors.ndim != 2 or posteriors.shape != (len(times_s), len(label_names)):
        raise ValueError(f"posteriors must be [packets, labels] = [{len(times_s)}, "
                         f"{len(label_names)}], got {posteriors.shape}")
    if not keyword_ids:
        raise ValueError(f"every label is ignored ({list(label_names)}): no keyword to detect")
    scores = posteriors[:, keyword_ids]
    above = scores >= threshold
    packet_index = np.arange(len(scores))[:, np.newaxis]
    # Last packet at or before each packet where the keyword was below the threshold.
    last_below = np.maximum.accumulate(np.where(above, -1, packet_index), axis=0)
    last_fired = np.full(len(keyword_ids), -2)
    suppression_s = suppression_ms / 1000.0
    blocked_until = -np.inf
    detections = []
    for i in np.flatnonzero(above.any(axis=1)):
        if times_s[i] < blocked_until - 1e-9:
            continue
        ready = above[i] & (last_below[i] > last_fired)
        if not ready.any():
            continue
        best = int(np.argmax(np.where(ready, scores[i], -np.inf)))
        last_fired[best] = i
        blocked_until = times_s[i] + suppression_s
        detections.append((float(times_s[i]), label_names[keyword_ids[best]],
                           float(scores[i, best])))
    return detections


def match_detections(detections: Sequence[tuple[float, str, float]],
                     events: Sequence[tuple[float, float, str]], keywords: Sequence[str], *,
                     tolerance_s: float = DEFAULT_TOLERANCE_S):
    """Matches detections to events: a detection is a hit when it falls in
    [start, end + tolerance_s] of a not yet matched event of its label (the one ending first).

    Returns (detection_hits: bool per detection, event_hits: per event True/False for events of
    ``keywords``, None for other events, which are only possible false-accept sources).
    """
    keywords = set(keywords)
    event_hits = [False if label in keywords else None for _, _, label in events]
    detection_hits = []
    for time_s, label, _ in sorted(detections, key=lambda d: d[0]):
        candidates = [k for k, (start, end, event_label) in enumerate(events)
                      if event_hits[k] is False and event_label == label
                      and start <= time_s <= end + tolerance_s]
        if candidates:
            event_hits[min(candidates, key=lambda k: events[k][1])] = True
        detection_hits.append(bool(candidates))
    return detection_hits, event_hits


@dataclass
class DetectionResult:
    """A model's detections over a long recording, matched against its events.

    ``posteriors`` are the smoothed softmax outputs [packets, labels] at ``times_s`` (end of each
    packet); ``detection_hits`` / ``event_hits`` say which detections matched and which keyword
    events were found (None: an event of an ignored label).
    """

    times_s: np.ndarray = field(repr=False)
    posteriors: np.ndarray = field(repr=False)
    label_names: list
    detections: list
    events: list = field(repr=False)
    hits: int
    misses: int
    false_accepts: int
    duration_s: float
    false_accepts_per_hour: float
    miss_rate: float
    detection_hits: list = field(default_factory=list, repr=False)
    event_hits: list = field(default_factory=list, repr=False)
    keywords: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    raw_posteriors: np.ndarray | None = field(default=None, repr=False)
    packets_per_second: float | None = None

    @property
    def keyword_events(self) -> int:
        return self.hits + self.misses

    def summary(self) -> dict:
        """The numbers and the settings, as plain JSON-able values."""
        settings = {key: list(value) if isinstance(value, tuple) else value
                    for key, value in self.settings.items()}
        return {"duration_s": float(self.duration_s), "hours": float(self.duration_s / 3600),
                "keyword_events": int(self.keyword_events),
                "other_events": int(len(self.events) - self.keyword_events),
                "detections": len(self.detections), "hits": int(self.hits),
                "misses": int(self.misses), "false_accepts": int(self.false_accepts),
                "false_accepts_per_hour": float(self.false_accepts_per_hour),
                "miss_rate": float(self.miss_rate), "packets": int(len(self.times_s)),
                "packets_per_second": (None if self.packets_per_second is None
                                       else float(self.packets_per_second)),
                **settings}

    def plot(self, ax=None, max_seconds: float | None = None):
        """Timeline: each keyword's smoothed posterior, the threshold, event spans shaded and
        labelled (hatched when missed), detections marked (hit: triangle, false accept: x)."""
        import matplotlib.pyplot as plt
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch

        if ax is None:
            _, ax = plt.subplots(figsize=(14, 4))
        end = self.duration_s if max_seconds is None else min(float(max_seconds),
                                                               self.duration_s)
        shown = self.times_s <= end
        colors = {name: plt.get_cmap("tab10")(k % 10) for k, name in enumerate(self.keywords)}
        for name in self.keywords:
            ax.plot(self.times_s[shown], self.posteriors[shown, self.label_names.index(name)],
                    lw=1, color=colors[name], label=name)
        threshold = self.settings.get("threshold")
        if threshold is not None:
            ax.axhline(threshold, ls="--", lw=1, color="0.3")
        text_y = ax.get_xaxis_transform()  # x in seconds, y in axes fraction
        upright = end <= 30  # longer spans: labels turned vertical so that they do not overlap
        for (start, stop, label), found in zip(self.events, self.event_hits):
            if start > end:
                continue
            color = colors.get(label, "0.6")
            ax.axvspan(start, stop, color=color, alpha=0.15, lw=0)
            if found is False:
                ax.axvspan(start, stop, fill=False, hatch="///", edgecolor=color, lw=0,
                           alpha=0.8)
            ax.text((start + stop) / 2, 1.01, label, transform=text_y, ha="center",
                    va="bottom", fontsize=7, color=color if found is not None else "0.4",
                    rotation=0 if upright else 90)
        for (time_s, label, score), hit in zip(self.detections, self.detection_hits):
            if time_s <= end:
                ax.plot(time_s, score, "v" if hit else "x", ms=8, mew=2,
                        color="green" if hit else "red")
        handles, _ = ax.get_legend_handles_labels()
        handles += [Line2D([], [], ls="--", color="0.3", label=f"threshold {threshold:g}"),
                    Line2D([], [], ls="", marker="v", color="green", label="hit"),
                    Line2D([], [], ls="", marker="x", mew=2, color="red", label="false accept"),
                    Patch(facecolor="none", edgecolor="0.4", hatch="///", lw=0,
                          label="missed word")]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
        ax.set_xlim(0, end)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("time (s)")
        ax.set_ylabel(f"posterior, {self.settings.get('smoothing_ms', 0):g} ms average")
        ax.set_title(f"{self.hits} of {self.keyword_events} keywords found, "
                     f"{self.false_accepts} false accept{'' if self.false_accepts == 1 else 's'} "
                     f"({self.false_accepts_per_hour:.1f}/h) in {self.duration_s / 60:.1f} min",
                     pad=16 if upright else 50)
        return ax


def score_posteriors(times_s: np.ndarray, posteriors: np.ndarray, label_names: Sequence[str],
                     events: Sequence[tuple[float, float, str]], duration_s: float, *,
                     threshold: float = 0.6, suppression_ms: float = 1000.0,
                     tolerance_s: float = DEFAULT_TOLERANCE_S,
                     ignore: Sequence[str] = DEFAULT_IGNORE, smoothing_ms: float = 0.0,
                     raw_posteriors: np.ndarray | None = None) -> DetectionResult:
    """Detections (:func:`find_detections`) on already smoothed ``posteriors``, matched against
    ``events`` (:func:`match_detections`) and counted. ``smoothing_ms`` is only recorded."""
    label_names = [str(name) for name in label_names]
    ignore = tuple(ignore)
    keywords = [name for name in label_names if name not in ignore]
    events = [(float(start), float(end), str(label)) for start, end, label in events]
    _check_keyword_events(events, keywords)
    if duration_s <= 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    detections = find_detections(times_s, posteriors, label_names, threshold=threshold,
                                 suppression_ms=suppression_ms, ignore=ignore)
    detection_hits, event_hits = match_detections(detections, events, keywords,
                                                  tolerance_s=tolerance_s)
    hits = sum(detection_hits)
    keyword_events = sum(hit is not None for hit in event_hits)
    false_accepts = len(detections) - hits
    return DetectionResult(
        times_s=np.asarray(times_s), posteriors=np.asarray(posteriors), label_names=label_names,
        detections=detections, events=events, hits=hits, misses=keyword_events - hits,
        false_accepts=false_accepts, duration_s=float(duration_s),
        false_accepts_per_hour=false_accepts * 3600.0 / duration_s,
        miss_rate=(keyword_events - hits) / keyword_events, detection_hits=detection_hits,
        event_hits=event_hits, keywords=keywords,
        settings={"smoothing_ms": float(smoothing_ms), "threshold": float(threshold),
                  "suppression_ms": float(suppression_ms), "tolerance_s": float(tolerance_s),
                  "ignore": ignore},
        raw_posteriors=raw_posteriors)


def _check_keyword_events(events, keywords: list[str]) -> None:
    if not any(label in keywords for _, _, label in events):
        labels = sorted({label for _, _, label in events})
        raise ValueError(f"the recording has no events of the keywords {keywords} (its events' "
                         f"labels: {labels or 'none'}); the miss rate needs keyword words in it: "
                         f"make it with make_long_recording from clips of those labels")


def _as_recording(recording) -> LongRecording:
    if isinstance(recording, LongRecording):
        return recording
    if isinstance(recording, (str, Path)):
        return LongRecording.load(recording)
    raise TypeError(f"recording must be a LongRecording (make_long_recording) or the path of "
                    f"one saved with LongRecording.save, not {type(recording).__name__}")


def detect(model, recording, label_names: Sequence[str], *, smoothing_ms: float = 200.0,
           threshold: float = 0.6, suppression_ms: float = 1000.0,
           tolerance_s: float = DEFAULT_TOLERANCE_S, ignore: Sequence[str] = DEFAULT_IGNORE,
           progress: bool = False) -> DetectionResult:
    """Streams ``model`` over ``recording`` packet by packet and scores its detections.

    ``model``: a kwsnb Keras model in any mode (run as an external-state stream inside one
    TensorFlow graph), or a streaming .tflite / its format folder (``tflite_stream_external_*``
    through metadata.json, ``tflite_stream_internal_float``). The stream starts from zero
    states (causal models such as svdf_resnet then see the real history, not the zero padding
    they were trained with). Posteriors are the softmax of the logits after each 320-sample
    packet, smoothed by a trailing ``smoothing_ms`` average; see :func:`find_detections` for when
    a keyword fires and :func:`match_detections` for hits (``tolerance_s`` after a word's end
    still counts). Events of ``ignore`` labels (placed ``_unknown_`` words) are never misses,
    only possible false-accept sources. ``result.packets_per_second`` records the speed.
    """
    from scipy.special import softmax

    check_settings(threshold=threshold, suppression_ms=suppression_ms, smoothing_ms=smoothing_ms)
    recording = _as_recording(recording)
    label_names = [str(name) for name in label_names]
    stream, labels, sample_rate = open_stream_of(model)
    if stream.label_count != len(label_names):
        raise ValueError(f"label_names has {len(label_names)} names but the model outputs "
                         f"{stream.label_count} logits")
    if labels and list(labels) != label_names:
        raise ValueError(f"label_names {label_names} differ from the model's labels "
                         f"{list(labels)} (metadata.json)")
    if recording.sample_rate != sample_rate:
        raise ValueError(f"the recording is at {recording.sample_rate} Hz but the model expects "
                         f"{sample_rate} Hz: resample it (soxr.resample) or make it with "
                         f"make_long_recording(..., sample_rate={sample_rate})")
    _check_keyword_events(recording.events, [n for n in label_names if n not in set(ignore)])
    audio = mono_audio(recording.audio, recording.sample_rate)  # may have changed since made
    count = len(audio) // stream.packet_samples
    if count == 0:
        raise ValueError(f"the recording ({len(audio)} samples) is shorter than one packet")
    packets = audio[:count * stream.packet_samples].reshape(count, stream.packet_samples)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=count, desc="streaming", unit="packet", leave=False)
    started = time.perf_counter()
    try:
        stream.reset()
        logits = stream.run(packets, bar)
    finally:
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - started
    raw = softmax(logits.astype(np.float64), axis=-1).astype(np.float32)
    packet_ms = 1000.0 * stream.packet_samples / recording.sample_rate
    times_s = np.arange(1, count + 1) * (stream.packet_samples / recording.sample_rate)
    result = score_posteriors(times_s, smooth_posteriors(raw, smoothing_ms, packet_ms),
                              label_names, recording.events, recording.duration_s,
                              threshold=threshold, suppression_ms=suppression_ms,
                              tolerance_s=tolerance_s, ignore=ignore, smoothing_ms=smoothing_ms,
                              raw_posteriors=raw)
    result.packets_per_second = count / max(elapsed, 1e-9)
    return result


def rescore(result: DetectionResult, *, smoothing_ms: float | None = None,
            threshold: float | None = None, suppression_ms: float | None = None,
            tolerance_s: float | None = None) -> DetectionResult:
    """``result`` with other settings, without running the model again (a new smoothing needs
    ``result.raw_posteriors``, which :func:`detect` keeps)."""
    settings = dict(result.settings)
    posteriors = result.posteriors
    if smoothing_ms is not None and smoothing_ms != settings.get("smoothing_ms"):
        if result.raw_posteriors is None:
            raise ValueError("this result has no raw posteriors to smooth again")
        packet_ms = 1000.0 * float(result.times_s[0]) if len(result.times_s) else 20.0
        posteriors = smooth_posteriors(result.raw_posteriors, smoothing_ms, packet_ms)
        settings["smoothing_ms"] = smoothing_ms
    for key, value in (("threshold", threshold), ("suppression_ms", suppression_ms),
                       ("tolerance_s", tolerance_s)):
        if value is not None:
            settings[key] = value
    rescored = score_posteriors(result.times_s, posteriors, result.label_names, result.events,
                                result.duration_s, raw_posteriors=result.raw_posteriors,
                                **settings)
    rescored.packets_per_second = result.packets_per_second
    return rescored


_SWEEP_KEYS = ("threshold", "detections", "hits", "misses", "false_accepts",
               "false_accepts_per_hour", "miss_rate")


def sweep_thresholds(result_or_posteriors, thresholds: Sequence[float] | None = None, *,
                     times_s: np.ndarray | None = None, label_names: Sequence[str] | None = None,
                     events: Sequence[tuple[float, float, str]] | None = None,
                     duration_s: float | None = None, packet_ms: float = 20.0,
                     **settings) -> list[dict]:
    """False accepts per hour against miss rate at each threshold, from one run.

    Give a :class:`DetectionResult` (its posteriors and settings are re-used; ``settings`` may
    override suppression_ms / tolerance_s), or smoothed posteriors [packets, labels] with
    ``label_names``, ``events`` and optionally ``times_s`` (default: end of each ``packet_ms``
    packet) and ``duration_s`` (default: the last time). ``thresholds`` default to 0.05 ... 0.95.
    Returns one dict per threshold (threshold, detections, hits, misses, false_accepts,
    false_accepts_per_hour, miss_rate).
    """
    if thresholds is None:
        thresholds = np.round(np.arange(0.05, 0.96, 0.05), 2)
    if isinstance(result_or_posteriors, DetectionResult):
        results = [rescore(result_or_posteriors, threshold=float(t), **settings)
                   for t in thresholds]
    else:
        if label_names is None or events is None:
            raise ValueError("sweeping raw posteriors needs label_names and events (or pass a "
                             "DetectionResult)")
        posteriors = np.asarray(result_or_posteriors)
        if times_s is None:
            times_s = np.arange(1, len(posteriors) + 1) * packet_ms / 1000.0
        if duration_s is None:
            duration_s = float(times_s[-1])
        results = [score_posteriors(times_s, posteriors, label_names, events, duration_s,
                                    threshold=float(t), **settings) for t in thresholds]
    return [{key: value for key, value in result.summary().items() if key in _SWEEP_KEYS}
            for result in results]


DEFAULT_SMOOTHINGS_MS = (0.0, 100.0, 200.0, 400.0, 700.0)
# 0.3 ... 0.975, then up to 0.9999: the softmax posteriors of these small models sit above 0.99 on
# many non-keywords in a stream, so a grid that stops at 0.99 can miss a 10-per-hour budget
# (docs/sc_lite10_findings.md, finding 1).
OPERATING_THRESHOLDS = tuple(float(t) for t in np.round(np.arange(0.3, 0.976, 0.025), 3)) + (
    0.99, 0.995, 0.998, 0.999, 0.9995, 0.9998, 0.9999)


def choose_operating_point(result: DetectionResult, *, max_false_accepts_per_hour: float = 10.0,
                           target_miss_rate: float = 0.1,
                           smoothings_ms: Sequence[float] = DEFAULT_SMOOTHINGS_MS,
                           thresholds: Sequence[float] | None = None) -> dict:
    """The smoothing and threshold with the lowest miss rate at most
    ``max_false_accepts_per_hour`` false accepts per hour on ``result``'s recording (re-scored
    from its raw posteriors; run :func:`detect` on a *validation* recording, never on the one you
    report). A setting that finds no word never counts. When no setting meets the false-accept
    budget, ``met`` is False and the setting nearest the target is chosen: the least
    ``miss_rate / target_miss_rate + false_accepts_per_hour / max_false_accepts_per_hour`` (the
    fewest false accepts alone would be a detector that never fires). Returns ``{"smoothing_ms", "threshold", "miss_rate",
    "false_accepts_per_hour", "met", "sweep"}``; ``sweep`` lists every (smoothing, threshold)
    tried, for a plot (``kwsnb.notebooks.plots.detection_tradeoff``).
    """
    if thresholds is None:
        thresholds = OPERATING_THRESHOLDS
    sweep = []
    for smoothing_ms in smoothings_ms:
        smoothed = rescore(result, smoothing_ms=float(smoothing_ms))
        for row in sweep_thresholds(smoothed, thresholds):
            sweep.append({"smoothing_ms": float(smoothing_ms), **row})
    # A setting that never finds a word meets any false-accept budget, and helps nobody.
    within = [row for row in sweep if row["false_accepts_per_hour"] <= max_false_accepts_per_hour
              and row["miss_rate"] < 1.0]
    if within:
        best = min(within, key=lambda r: (r["miss_rate"], r["false_accepts_per_hour"],
                                          -r["threshold"]))
    else:
        best = min([row for row in sweep if row["miss_rate"] < 1.0] or sweep, key=lambda r: (
            r["miss_rate"] / max(target_miss_rate, 1e-9)
            + r["false_accepts_per_hour"] / max(max_false_accepts_per_hour, 1e-9)))
    return {"smoothing_ms": best["smoothing_ms"], "threshold": best["threshold"],
            "miss_rate": best["miss_rate"],
            "false_accepts_per_hour": best["false_accepts_per_hour"], "met": bool(within),
            "max_false_accepts_per_hour": float(max_false_accepts_per_hour), "sweep": sweep}
