"""Hard negatives: the audio a trained model falsely accepts, mined from its TRAINING speakers.

The model's streaming int8 TFLite runs over a long recording made of the training split's clips
(every keyword clip and every non-keyword clip, a word every 1-3 s, in the official background
noise; ``kwsnb.data.long_audio.make_long_recording``) at the model's stored smoothing and a
mining threshold below its operating point. Every detection that matches no keyword event and
falls on a non-keyword word or on noise gives one hard negative: the second of audio that ends
at the detection. Detections on another keyword (keyword confusions) are counted, not kept: that
audio is a keyword, never ``_unknown_``.

The clips go to ``OUT/hard_negative/`` in the Speech Commands layout, for training with
``--extra_unknown_dir OUT --extra_unknown_percentage P``. ``--tts_words on,off`` also links that
many of the offline TTS clips the committed recipe adds (``--tts_unknown_words``, which cannot be
combined with ``--extra_unknown_dir``), so the folder stands for both.
Validation and test speakers are never used: choose and score as before
(``benchmarks/streaming_detection.py``). What it did on tc_resnet: docs/sc_lite10_findings.md, 14.

    python benchmarks/hard_negatives.py --train_dir models/tc_resnet --out runs/hard_negatives
        [--minutes 360] [--threshold 0.3] [--tts_words on,off --tts_clips 600]
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.streaming_detection import (  # noqa: E402
    GAP_S, false_accept_sources, model_flags, noise_level, split_clips, stream_model)

HARD_NEGATIVE_FOLDER = "hard_negative"


def mine(result, audio: np.ndarray, sample_rate: int = 16000):
    """(hard-negative clips [n, sample_rate], keyword confusions) of a ``DetectionResult`` over
    ``audio``: its false accepts on non-keyword words or noise, one second each."""
    from kwsnb import data

    clips, confusions = [], 0
    for time_s, _, word in false_accept_sources(result):
        if word not in (None, data.UNKNOWN_WORD_LABEL, data.SILENCE_LABEL):
            confusions += 1
            continue
        end = int(round(time_s * sample_rate))
        if sample_rate <= end <= len(audio):  # a whole second before it
            clips.append(audio[end - sample_rate:end])
    return np.array(clips, np.float32).reshape(-1, sample_rate), confusions


def link_tts_clips(words: str, count: int, out: Path, wanted_words, seed: int = 1) -> int:
    """Links ``count`` of the offline TTS clips of ``words`` (seeded choice) into ``out``."""
    from kwsnb.data.tts_unknown import parse_words, tts_unknown_folder

    folder = tts_unknown_folder(words, wanted_words, progress=False)
    files = sorted(path for word in parse_words(words) for path in (folder / word).glob("*.wav"))
    if count > len(files):
        raise ValueError(f"--tts_clips {count}: {folder} has {len(files)} clips")
    for path in random.Random(seed).sample(files, count):
        target = out / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(path)
    return count


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train_dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data_root", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--minutes", type=float, default=360.0,
                        help="recording length; 360 places each training clip about once")
    parser.add_argument("--threshold", type=float, default=0.3,
                        help="mining threshold (the stored operating point's is ~0.95)")
    parser.add_argument("--snr_db", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tts_words", default="", help="e.g. on,off: also link TTS clips")
    parser.add_argument("--tts_clips", type=int, default=600)
    args = parser.parse_args(argv)

    import soundfile

    from kwsnb import data
    from kwsnb.data.long_audio import make_long_recording
    from kwsnb.evaluate import operating_point
    from kwsnb.evaluate.detect import detect, rescore

    try:
        model_path = stream_model(args.train_dir)
    except FileNotFoundError as error:
        raise SystemExit(str(error)) from None
    point = operating_point.stored(args.train_dir)
    if point is None:
        raise SystemExit(f"{args.train_dir}/detection.json not found: choose the operating point "
                         "first (python benchmarks/streaming_detection.py)")
    if not 0.0 < args.threshold < point["threshold"]:
        raise SystemExit(f"--threshold {args.threshold} must lie between 0 and the operating "
                         f"point's {point['threshold']}: mining looks below it")
    out = args.out / HARD_NEGATIVE_FOLDER
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty: give another --out (a second run would mix sets)")
    flags = model_flags(args.train_dir, args.data_root)

    started = time.monotonic()
    # Every training clip; the recipe's extra _unknown_ clips (TTS on/off) are among them.
    audio, labels, label_names = split_clips(flags, "training")
    recording = make_long_recording(audio, labels, label_names,
                                    noise=Path(flags["data_dir"]) / data.BACKGROUND_NOISE_DIR_NAME,
                                    duration_s=60.0 * args.minutes, gap_s=GAP_S,
                                    noise_level=noise_level(args.snr_db), seed=args.seed)
    result = detect(model_path, recording, label_names,
                    smoothing_ms=point["smoothing_ms"], threshold=args.threshold)
    at_point = rescore(result, threshold=point["threshold"])
    clips, confusions = mine(result, recording.audio)
    out.mkdir(parents=True, exist_ok=True)
    for index, clip in enumerate(clips):
        soundfile.write(out / f"hn{index:05d}_nohash_0.wav", clip, 16000, subtype="PCM_16")
    linked = (link_tts_clips(args.tts_words, args.tts_clips, args.out, flags["wanted_words"])
              if args.tts_words else 0)
    summary = {"train_dir": str(args.train_dir), "minutes": args.minutes,
               "snr_db": args.snr_db, "seed": args.seed, "smoothing_ms": point["smoothing_ms"],
               "mining_threshold": args.threshold,
               "false_accepts_per_hour_at_mining_threshold": round(
                   result.false_accepts_per_hour, 1),
               "at_operating_point": {"threshold": point["threshold"],
                                      "miss_rate": round(at_point.miss_rate, 4),
                                      "false_accepts_per_hour": round(
                                          at_point.false_accepts_per_hour, 1)},
               "hard_negatives": len(clips), "keyword_confusions": confusions,
               "tts_clips_linked": linked, "tts_words": args.tts_words,
               "seconds": round(time.monotonic() - started, 1)}
    (args.out / "hard_negatives.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{args.train_dir.name} over {args.minutes:g} min of training speakers at "
          f"{args.snr_db:g} dB: {len(clips)} hard negatives, {confusions} keyword confusions at "
          f"threshold {args.threshold:g} ({summary['false_accepts_per_hour_at_mining_threshold']}"
          f" false accepts per hour); at the operating point {point['threshold']:g}: miss rate "
          f"{100 * at_point.miss_rate:.1f}%, {at_point.false_accepts_per_hour:.1f} per hour")
    print(f"wrote {out}" + (f" and {linked} TTS clips of {args.tts_words}" if linked else "")
          + f"; train with --extra_unknown_dir {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
