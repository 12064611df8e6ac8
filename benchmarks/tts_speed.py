"""Speed of the offline TTS data set (data_setup.synthetic): clips per second.

    python benchmarks/tts_speed.py [--speakers 24] [--jobs 1,2] [--full]

Prints, for the 35 Speech Commands V2 words:
- espeak-ng alone (one utterance, library freshly loaded as the data set does it);
- the whole per-clip path in this process (speak, resample, trim, room/mic/noise, write);
- synthesize() end to end with each --jobs value (process start-up, word check, background
  noise and lists included); with --full, also the default data set.
Run it on a quiet machine: the numbers are per wall-clock second.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_setup import espeak, synthetic  # noqa: E402


def _rate(count: int, seconds: float) -> str:
    return f"{count / seconds:8.1f} /s  ({count} in {seconds:.2f} s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", type=int, default=24,
                        help="speakers for the end-to-end runs (default: %(default)s)")
    parser.add_argument("--jobs", default="1,2", help="comma-separated process counts")
    parser.add_argument("--full", action="store_true",
                        help="also time the default data set (35 words x "
                             f"{synthetic.DEFAULT_NUM_SPEAKERS} speakers) with the last "
                             "--jobs value")
    args = parser.parse_args()
    words = synthetic.SPEECH_COMMANDS_V2_WORDS
    speakers = synthetic.make_speakers(args.speakers, seed=0)
    engine = espeak.load_engine()
    print(f"espeak-ng {engine.version}; {os.cpu_count()} CPUs; {len(words)} words")

    started = time.perf_counter()
    count = 0
    for speaker in speakers[:8]:
        for word in words:
            engine.say(word + ".", speaker.voice, int(speaker.rate_wpm), int(speaker.pitch))
            count += 1
    print(f"espeak-ng utterances, 1 process:  {_rate(count, time.perf_counter() - started)}")

    with tempfile.TemporaryDirectory() as scratch:
        for word in words:
            (Path(scratch) / word).mkdir()
        started = time.perf_counter()
        for speaker in speakers[:8]:
            synthetic._synthesize_speaker(scratch, speaker, words, seed=0)
        print(f"finished clips, 1 process:        "
              f"{_rate(8 * len(words), time.perf_counter() - started)}")

    num_clips = len(words) * args.speakers
    default_clips = len(words) * synthetic.DEFAULT_NUM_SPEAKERS
    for jobs in (int(j) for j in args.jobs.split(",")):
        with tempfile.TemporaryDirectory() as scratch:
            started = time.perf_counter()
            synthetic.synthesize(Path(scratch) / "set", words=words, num_speakers=args.speakers,
                                 progress=False, jobs=jobs)
            seconds = time.perf_counter() - started
        print(f"synthesize(), jobs={jobs}, end to end: {_rate(num_clips, seconds)}")
    if args.full:
        with tempfile.TemporaryDirectory() as scratch:
            started = time.perf_counter()
            synthetic.synthesize(Path(scratch) / "set", progress=False, jobs=jobs)
            seconds = time.perf_counter() - started
        print(f"default set, jobs={jobs}:            {_rate(default_clips, seconds)}")


if __name__ == "__main__":
    main()
