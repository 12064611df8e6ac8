"""Throughput of kwsnb.data: load time and clips/s through the tf.data pipeline.

    python benchmarks/data_throughput.py [--data_dir DIR] [--wanted_words ...] [--batches 200]

Default folder: ../shared/data/speech_commands_lite (the SC-lite-10 words). Prints the time to
index, decode (no cache) and reload from the clip cache, then batches/s and clips/s of
``SpeechCommands.dataset('training')`` with and without augmentation (after a warm-up that
includes the one-off XLA compile, reported separately). Training at ~20 steps/s of batch 100
needs the pipeline at 2,000 clips/s; the rest of the CPU goes to the model. Run it on a quiet
machine: the numbers scale with free cores.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from kwsnb import data

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "speech_commands_lite"
SC_LITE_9_WORDS = "yes,no,up,down,left,right,stop"


def _timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def pipeline_rate(dataset, batches: int) -> tuple[float, float, float]:
    """(seconds to the first batch, batches/s, CPU seconds per batch) over ``batches``.

    CPU time (all threads of this process) is what the pipeline takes from the training step;
    it is also less sensitive than wall time to other jobs on a shared machine.
    """
    iterator = iter(dataset)
    _, first = _timed(lambda: next(iterator))
    for _ in range(5):  # let AUTOTUNE settle
        next(iterator)
    cpu_start = time.process_time()
    _, elapsed = _timed(lambda: [next(iterator) for _ in range(batches)])
    cpu = time.process_time() - cpu_start
    return first, batches / elapsed, cpu / batches


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--wanted_words", default=SC_LITE_9_WORDS)
    parser.add_argument("--batch_size", type=int, default=100)
    parser.add_argument("--batches", type=int, default=200)
    args = parser.parse_args(argv)

    folder, seconds = _timed(lambda: data.scan_folder(args.data_dir))
    print(f"{folder}\nindex: {seconds:.2f} s")
    with tempfile.TemporaryDirectory() as cache_dir:
        options = dict(progress=False, cache_dir=cache_dir)
        dataset, seconds = _timed(lambda: data.SpeechCommands(args.data_dir, args.wanted_words,
                                                              **options))
        clips = sum(dataset.split_sizes.values())
        print(f"{dataset}\ndecode + index (cold, writes the cache): {seconds:.2f} s "
              f"({clips:,} examples)")
        _, seconds = _timed(lambda: data.SpeechCommands(args.data_dir, args.wanted_words,
                                                        **options))
        print(f"reload from the clip cache: {seconds:.2f} s")

    for augment in (False, True):
        first, rate, cpu = pipeline_rate(
            dataset.dataset("training", args.batch_size, augment=augment), args.batches)
        print(f"training pipeline, augment={augment!s:5}: first batch {first:.2f} s, "
              f"{rate:6.1f} batches/s = {rate * args.batch_size:7,.0f} clips/s; "
              f"{1000 * cpu:.1f} CPU-ms per batch of {args.batch_size} "
              f"(= {20 * cpu:.2f} cores at 20 steps/s)")


if __name__ == "__main__":
    main()
