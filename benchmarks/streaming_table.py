"""The eight architectures side by side: parameters, MACs, what changed to stream, and how far
the streaming models are from the non-stream model on real audio.

    python benchmarks/streaming_table.py [--models_dir models] [--clips 20]
                                         [--test_dir ../shared/data/speech_commands_test_lite]

Weights: the trained SC-lite-10 model in ``models_dir/<arch>`` where there is one (run
``benchmarks/sc_lite10.py`` first), else the untrained model with the seed's flags. Audio: the
first ``--clips`` word clips of ``--test_dir``, one word folder after another (any folder of
word folders will do, e.g. the offline TTS set of ``python -m data_setup.synthetic``). Each clip is streamed 20 ms
at a time through the Keras streaming models with internal and with external state, and the
logits after its last packet are compared with the non-stream model's on the clip, as
``tests/test_streaming.py`` defines it: valid-padding models from a reset state (the 50 packets
end exactly on the clip's 49 frames); causal ones from a reset state primed with the clip's
first packet. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kwsnb import data, models, streaming
from kwsnb.models import seed  # noqa: E402
from kwsnb import train as training  # noqa: E402
from kwsnb.layers import Mode  # noqa: E402

STREAM_MODES = (Mode.STREAM_INTERNAL_STATE_INFERENCE, Mode.STREAM_EXTERNAL_STATE_INFERENCE)


def load(name: str, models_dir: Path):
    """(non-stream model, where its weights came from)."""
    train_dir = models_dir / name
    if (train_dir / training.BEST_WEIGHTS).is_file():
        model, _ = training.load_trained_model(train_dir)
        return model, f"trained ({train_dir})"
    return models.build(name, Mode.NON_STREAM_INFERENCE), "untrained"


def test_clips(test_dir: Path, count: int) -> np.ndarray:
    if not test_dir.is_dir():
        raise SystemExit(f"{test_dir} not found: give --test_dir (a folder of word folders)")
    folders = sorted(p for p in test_dir.iterdir() if p.is_dir() and not p.name.startswith("_"))
    paths = [path for i in range(count) for folder in folders
             for path in sorted(folder.iterdir())[i:i + 1]][:count]
    return np.stack([data.load_clip(path) for path in paths])


def max_difference(model, clips: np.ndarray) -> dict[Mode, tuple[float, float]]:
    """Per state mode: (largest |stream - non-stream| logit after each clip's last packet, the
    same relative to the largest |non-stream logit|)."""
    reference = model.predict(clips, batch_size=len(clips), verbose=0)
    causal = not streaming.exact_on_last_second(model)
    result = {}
    for mode in STREAM_MODES:
        runner = streaming.StreamRunner(streaming.convert(model, mode))
        worst = 0.0
        for clip, expected in zip(clips, reference):
            first = runner.packet_samples
            runner.reset(prime=clip[:first] if causal else None)
            logits = runner.run(clip[first:] if causal else clip)[-1]
            worst = max(worst, float(np.abs(logits - expected).max()))
        result[mode] = (worst, worst / max(1.0, float(np.abs(reference).max())))
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models_dir", type=Path, default=REPO / "models")
    parser.add_argument("--test_dir", type=Path,
                        default=REPO.parent / "shared" / "data" / "speech_commands_test_lite")
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--models", default=",".join(models.ARCHITECTURES))
    args = parser.parse_args(argv)
    clips = test_clips(args.test_dir, args.clips)
    print(f"{len(clips)} clips from {args.test_dir}\n")
    print("| model | params (seed) | body MACs / clip | body MACs / packet (x50) | padding "
          "| what changed to stream | max diff internal | max diff external | weights |")
    print("|---" * 9 + "|")
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        model, weights = load(name, args.models_dir)
        stream_model = streaming.to_stream_external(model)
        macs = models.count_macs(model)["body"]
        packet_macs = models.count_macs(stream_model)["body"]
        difference = max_difference(model, clips)
        padding = "valid" if streaming.exact_on_last_second(model) else "causal"
        internal, external = (difference[mode] for mode in STREAM_MODES)
        print(f"| {name} | {models.count_params(model):,} ({seed.PUBLISHED[name]['params']:,}) "
              f"| {macs:,} | {packet_macs:,} ({50 * packet_macs:,}) | {padding} "
              f"| {models.architecture(name).CHANGES} "
              f"| {internal[0]:.1e} ({internal[1]:.0e} rel.) "
              f"| {external[0]:.1e} ({external[1]:.0e} rel.) | {weights} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
