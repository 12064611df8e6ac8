"""Streaming detection of trained models over long recordings of held-out speakers in noise.

For each model's streaming int8 TFLite (``tflite_stream_external_int8``, what a device runs):

1. a VALIDATION recording: the validation speakers' clips of speech_commands_lite (every keyword
   clip and every non-keyword clip of the validation list: bed, cat, ... as ``_unknown_``), a
   word every 1-3 s, over the official background noise at 20 dB SNR
   (``kwsnb.data.long_audio.make_long_recording``);
2. the operating point (smoothing, threshold) chosen on it by
   ``kwsnb.evaluate.detect.choose_operating_point``: the fewest misses at <= ``--max_fa_per_hour`` false
   accepts per hour. It is never chosen on a scored recording;
3. TEST recordings of the same length from speech_commands_test_lite (speakers disjoint from
   training and validation; every non-keyword word present: the ``_unknown_`` folder and the
   folders the benchmark leaves out of per-clip scoring, on and off, placed as ``_unknown_``),
   at 20 dB and 10 dB SNR, scored at that operating point (``kwsnb.evaluate.detect.detect``).

Written per model: ``TRAIN_DIR/detection.json``, the layout ``kwsnb.demo`` writes and
``kwsnb.notebooks.microphone.operating_point`` / the notebooks read (the 20 dB test summary at the top,
``operating_point``), plus ``snr_db`` (every SNR's summary), ``mlperf_tiny`` and ``recordings``.

The MLPerf Tiny streaming wake-word view is derived from the same runs: false rejections among
50 keywords (50 x miss rate) and false detections in 20 minutes (false accepts per hour / 3);
its bar is <= 8 of each.

    python benchmarks/streaming_detection.py [--models_dir models] [--models tc_resnet,svdf]
        [--data_root ../shared/data] [--minutes 20] [--table docs/streaming_detection.md]

Recordings are made once per (folder, minutes, seed, SNR) and kept under ``--cache``
(default ``runs/streaming_detection``) as wav + csv.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STREAM_FORMAT = "tflite_stream_external_int8"
TEST_FOLDER = "speech_commands_test_lite"
TRAIN_FOLDER = "speech_commands_lite"
SNRS_DB = (20.0, 10.0)
CHOOSE_SNR_DB = 20.0
MINUTES = 20.0
GAP_S = (1.0, 3.0)
MAX_FA_PER_HOUR = 10.0
VALIDATION_SEED, TEST_SEED = 101, 202
MLPERF_KEYWORDS, MLPERF_MINUTES, MLPERF_BAR = 50, 20.0, 8


def noise_level(snr_db: float) -> float:
    """``make_long_recording``'s noise_level (noise RMS / speech RMS) for an SNR in dB."""
    return float(10.0 ** (-snr_db / 20.0))


def split_clips(flags: dict, split: str = "validation"):
    """(audio, labels, label_names) of every clip of a split of the model's data folder:
    keywords under their label, every other word as ``_unknown_`` (no silence clips)."""
    from kwsnb import data

    # unknown_percentage high enough to take every non-keyword clip of the split (not the 10%
    # the training recipe samples); silence_percentage 0: the recording's gaps are the silence.
    dataset = data.SpeechCommands.from_flags(flags, unknown_percentage=1e6, silence_percentage=0,
                                             unknown_with_replacement=False,
                                             progress=False)
    audio, labels = dataset.arrays(split)
    return audio, labels, list(dataset.labels)


def model_flags(train_dir: Path, data_root: Path) -> dict:
    """``train_dir``'s flags, with ``data_dir`` made to point at the data: paths in flags.json
    may be relative to the repository (benchmarks/sc_lite*.py)."""
    from kwsnb.train import load_flags

    flags = load_flags(train_dir)
    data_dir = Path(flags["data_dir"])
    if not data_dir.is_dir():
        data_dir = data_root / TRAIN_FOLDER
    return {**flags, "data_dir": str(data_dir)}


def stream_model(train_dir: Path, stream_format: str = STREAM_FORMAT) -> Path:
    """``train_dir/stream_format``, or FileNotFoundError saying how to export it."""
    model_path = train_dir / stream_format
    if not (model_path / "model.tflite").is_file():
        raise FileNotFoundError(f"{model_path}/model.tflite not found: export it first "
                                f"(python -m kwsnb.evaluate --train_dir {train_dir} --formats "
                                f"{stream_format})")
    return model_path


def test_clips(test_dir: Path, label_names: list[str]):
    """(audio, labels, names) of every word clip of a test-layout folder: ``names`` is
    ``label_names`` followed by every non-keyword word (the ``_unknown_`` folder's words, read
    from its file names, and folders that are not labels: on and off for SC-lite-10), so a
    recording's events name each word and a false accept names the word that caused it."""
    from kwsnb import data

    root = Path(test_dir)
    paths, words = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        name = folder.name.lower()
        if name in (data.SILENCE_LABEL, data.BACKGROUND_NOISE_DIR_NAME):
            continue
        for path in sorted(p for p in folder.iterdir()
                           if p.suffix.lower() in data.AUDIO_EXTENSIONS):
            paths.append(path)
            words.append(path.name.split("_")[0].lower() if name == data.UNKNOWN_WORD_LABEL
                         else name)
    clips, ok = data.load_clips(paths, root, progress=False)
    names = [*label_names, *sorted(set(words) - set(label_names))]
    labels = np.array([names.index(word) for word in words], np.int32)
    return clips[ok].astype(np.float32) / 32768.0, labels[ok], names


def recording(cache: Path, name: str, audio, labels, label_names, noise, minutes: float,
              snr_db: float, seed: int):
    from kwsnb.data.long_audio import LongRecording, make_long_recording

    path = cache / f"{name}_{minutes:g}min_{snr_db:g}dB_seed{seed}.wav"
    if path.is_file() and path.with_suffix(".csv").is_file():
        return path, LongRecording.load(path)
    made = make_long_recording(audio, labels, label_names, noise=noise,
                               duration_s=60.0 * minutes, gap_s=GAP_S,
                               noise_level=noise_level(snr_db), seed=seed)
    made.save(path)
    return path, LongRecording.load(path)  # as later runs read it (16-bit)


def mlperf_view(summary: dict) -> dict:
    """False rejections among 50 keywords and false detections in 20 minutes, scaled from the
    measured miss rate and false accepts per hour."""
    rejections = MLPERF_KEYWORDS * summary["miss_rate"]
    detections = summary["false_accepts_per_hour"] * MLPERF_MINUTES / 60.0
    return {"false_rejections_per_50": round(float(rejections), 1),
            "false_detections_per_20_min": round(float(detections), 1),
            "meets_bar": bool(rejections <= MLPERF_BAR and detections <= MLPERF_BAR)}


def benchmark_model(train_dir: Path, data_root: Path, cache: Path, minutes: float = MINUTES,
                    max_fa_per_hour: float = MAX_FA_PER_HOUR, stream_format: str = STREAM_FORMAT,
                    write: bool = True, results: dict | None = None,
                    validation_minutes: float | None = None) -> dict:
    """Chooses the operating point on the validation recording, scores the test recordings;
    writes ``train_dir/detection.json`` (``write``) and returns what it holds. ``results``, a
    dict, receives each run's ``DetectionResult`` ("validation", "20", "10") for re-scoring.
    ``validation_minutes`` (default ``minutes``): a longer validation recording makes the
    false-accept budget less of a coin toss (10 per hour is 3 false accepts in 20 minutes)."""
    from kwsnb import data
    from kwsnb.evaluate import operating_point
    from kwsnb.evaluate.detect import choose_operating_point, detect

    flags = model_flags(train_dir, data_root)
    model_path = stream_model(train_dir, stream_format)
    cache.mkdir(parents=True, exist_ok=True)
    noise = Path(flags["data_dir"]) / data.BACKGROUND_NOISE_DIR_NAME
    started = time.monotonic()
    audio, labels, label_names = split_clips(flags, "validation")
    _, validation = recording(cache, f"validation_{len(label_names)}labels", audio, labels,
                              label_names, noise, validation_minutes or minutes, CHOOSE_SNR_DB,
                              VALIDATION_SEED)
    chosen = detect(model_path, validation, label_names)
    if results is not None:
        results["validation"] = chosen
    point = choose_operating_point(chosen, max_false_accepts_per_hour=max_fa_per_hour)
    point = {key: value for key, value in point.items() if key != "sweep"}
    audio, labels, names = test_clips(data_root / TEST_FOLDER, label_names)
    test_dir = data_root / TEST_FOLDER
    others = sorted(p.name.lower() for p in test_dir.iterdir()
                    if p.is_dir() and p.name.lower() not in names[:len(label_names)])
    untrained = [word for word in others if word not in (data.SILENCE_LABEL,
                                                          data.UNKNOWN_WORD_LABEL)]
    by_snr = {}
    for snr_db in SNRS_DB:
        _, scored = recording(cache, f"test_{len(label_names)}labels_words", audio, labels,
                              names, noise, minutes, snr_db, TEST_SEED)
        result = detect(model_path, scored, label_names, smoothing_ms=point["smoothing_ms"],
                        threshold=point["threshold"])
        if results is not None:
            results[f"{snr_db:g}"] = result
        summary = result.summary()
        summary["ignore"] = list(summary.get("ignore", []))
        summary["per_keyword_misses"] = {
            keyword: int(sum(1 for (_, _, label), hit in zip(result.events, result.event_hits)
                             if label == keyword and hit is False))
            for keyword in result.keywords}
        summary["false_accepts_by_word"] = _false_accepts_by_word(result)
        # False accepts on the words left out of per-clip scoring (on, off: no training data)
        caused = sum(count for key, count in summary["false_accepts_by_word"].items()
                     if key.split("->")[0] in untrained)
        summary["false_accepts_per_hour_without_" + "_".join(untrained)] = (
            (summary["false_accepts"] - caused) * 3600.0 / summary["duration_s"])
        summary["mlperf_tiny"] = mlperf_view(summary)
        by_snr[f"{snr_db:g}"] = summary
    report = {**by_snr[f"{CHOOSE_SNR_DB:g}"], "format": stream_format, "snr_db": by_snr,
              "mlperf_tiny": {snr: entry["mlperf_tiny"] for snr, entry in by_snr.items()},
              "recordings": {"minutes": minutes,
                             "validation_minutes": validation_minutes or minutes,
                             "gap_s": list(GAP_S),
                             "choose_on": f"{TRAIN_FOLDER} validation speakers, "
                                          f"{CHOOSE_SNR_DB:g} dB, seed {VALIDATION_SEED}",
                             "scored_on": f"{TEST_FOLDER}, every word (non-keywords by name, "
                                          f"{', '.join(untrained)} included), seed {TEST_SEED}"},
              "seconds": round(time.monotonic() - started, 1)}
    if write:
        operating_point.store(train_dir, point, **report)
    return {**report, "operating_point": point}


def false_accept_sources(result) -> list[tuple[float, str, str | None]]:
    """(time_s, label, word) of each false accept: the word of the last event it overlaps
    (within the tolerance), None for noise."""
    tolerance = result.settings.get("tolerance_s", 0.5)
    sources = []
    for (time_s, label, _), hit in zip(result.detections, result.detection_hits):
        if hit:
            continue
        near = [event for event in result.events
                if event[0] <= time_s <= event[1] + tolerance]
        sources.append((time_s, label, near[-1][2] if near else None))
    return sources


def _false_accepts_by_word(result) -> dict:
    """Each false accept attributed to the word it overlaps, else 'noise': which words the
    model mistakes for keywords."""
    counts: dict[str, int] = {}
    for _, label, word in false_accept_sources(result):
        key = f"{word or 'noise'}->{label}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def markdown_table(reports: dict[str, dict]) -> str:
    lines = ["| model | smoothing ms | threshold | val. miss % | val. FA/h "
             + "".join(f"| miss % {snr} dB | FA/h {snr} dB (without untrained words) "
                       for snr in map("{:g}".format, SNRS_DB))
             + "| MLPerf FR/50, FD/20 min (20 dB) |",
             "|---" * (5 + 2 * len(SNRS_DB) + 1) + "|"]
    for name, report in reports.items():
        point = report["operating_point"]
        cells = [name, f"{point['smoothing_ms']:g}", f"{point['threshold']:g}",
                 f"{100 * point['miss_rate']:.1f}", f"{point['false_accepts_per_hour']:.1f}"
                 + ("" if point["met"] else " (budget not met)")]
        for snr in map("{:g}".format, SNRS_DB):
            entry = report["snr_db"][snr]
            without = [value for key, value in entry.items()
                       if key.startswith("false_accepts_per_hour_without")]
            cells += [f"{100 * entry['miss_rate']:.1f}", f"{entry['false_accepts_per_hour']:.1f}"
                      + (f" ({without[0]:.1f})" if without else "")]
        view = report["mlperf_tiny"][f"{CHOOSE_SNR_DB:g}"]
        cells.append(f"{view['false_rejections_per_50']:g}, "
                     f"{view['false_detections_per_20_min']:g}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from kwsnb import models

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models_dir", type=Path, default=REPO / "models")
    parser.add_argument("--models", default=",".join(models.MODELS))
    parser.add_argument("--data_root", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--minutes", type=float, default=MINUTES)
    parser.add_argument("--validation_minutes", type=float,
                        help="length of the recording the operating point is chosen on "
                             "[--minutes]")
    parser.add_argument("--max_fa_per_hour", type=float, default=MAX_FA_PER_HOUR)
    parser.add_argument("--format", default=STREAM_FORMAT)
    parser.add_argument("--cache", type=Path, default=REPO / "runs" / "streaming_detection")
    parser.add_argument("--table", type=Path, help="also write the markdown table here")
    args = parser.parse_args(argv)
    reports = {}
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        train_dir = args.models_dir / name
        if not (train_dir / "flags.json").is_file():
            print(f"{name}: no {train_dir}/flags.json, skipped", file=sys.stderr)
            continue
        try:
            reports[name] = benchmark_model(train_dir, args.data_root, args.cache, args.minutes,
                                            args.max_fa_per_hour, args.format,
                                            validation_minutes=args.validation_minutes)
        except (FileNotFoundError, ValueError) as error:
            print(f"{name}: error: {error}", file=sys.stderr)
            continue
        print(f"{name}: done in {reports[name]['seconds']:.0f} s", flush=True)
    table = markdown_table(reports)
    print(table)
    if args.table:
        args.table.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
