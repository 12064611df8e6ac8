"""MFCC front end: error against the numpy reference (and the seed's TF ops) and TFLite latency.

    python benchmarks/features_error.py [--data-dir ../shared/data/speech_commands_lite]
                                        [--num-clips 500] [--runs 300]

Prints, over N real clips (spread evenly over the word folders, padded/trimmed to 1 s), the max
and mean absolute error of ``kwsnb.features.MFCC`` against ``kwsnb.features.reference`` on the
log-mel and MFCC scales for both ``fft_magnitude_squared`` settings, the same for the seed's own
AudioSpectrogram + Mfcc TensorFlow ops where this TensorFlow still has them, and the median
latency (1 thread) of the front end alone as TFLite for a 1 s clip and for one streaming frame
(640 samples). Latency numbers are only meaningful on a quiet machine.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import tensorflow as tf  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402
from tqdm import tqdm  # noqa: E402

from kwsnb.features import FEATURE_DEFAULTS, FRAME_SAMPLES, MFCC, reference  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
CLIP_SAMPLES = FEATURE_DEFAULTS["sample_rate"]


def read_clips(data_dir: Path, num_clips: int) -> np.ndarray:
    """num_clips 1 s clips taken evenly from every word folder (not _background_noise_)."""
    files = sorted(p for p in data_dir.glob("*/*") if p.suffix in (".wav", ".flac")
                   and not p.parent.name.startswith("_"))
    if not files:
        raise SystemExit(f"no .wav/.flac clips in word folders under {data_dir} "
                         "(pass --data-dir pointing at a Speech Commands layout folder)")
    spread = np.linspace(0, len(files) - 1, min(num_clips, len(files))).astype(int)
    picked = [files[i] for i in spread]
    clips = np.zeros((len(picked), CLIP_SAMPLES), np.float32)
    for row, path in enumerate(tqdm(picked, desc="reading clips", leave=False, disable=None)):
        audio, rate = sf.read(path, dtype="float32")
        if rate != CLIP_SAMPLES:
            raise SystemExit(f"{path}: sample rate {rate}, expected {CLIP_SAMPLES}")
        clips[row, :min(len(audio), CLIP_SAMPLES)] = audio[:CLIP_SAMPLES]
    return clips


def seed_ops_mfcc(clips: np.ndarray, flags: dict) -> np.ndarray | None:
    """The seed's mfcc_op features from TF's AudioSpectrogram + Mfcc ops, if TF still has them."""
    if not (hasattr(tf.raw_ops, "AudioSpectrogram") and hasattr(tf.raw_ops, "Mfcc")):
        return None
    layer = MFCC(**flags)
    spectrogram = tf.raw_ops.AudioSpectrogram(
        input=clips.T, window_size=layer.frame_samples, stride=layer.packet_samples,
        magnitude_squared=flags["fft_magnitude_squared"])
    return tf.raw_ops.Mfcc(
        spectrogram=spectrogram, sample_rate=flags["sample_rate"],
        upper_frequency_limit=flags["mel_upper_edge_hertz"],
        lower_frequency_limit=flags["mel_lower_edge_hertz"],
        filterbank_channel_count=flags["mel_num_bins"],
        dct_coefficient_count=flags["dct_num_features"]).numpy()


def report_errors(clips: np.ndarray, batch_size: int = 100) -> None:
    print(f"\nLayer vs numpy reference over {len(clips)} clips (absolute errors; log-mel in "
          "natural-log units, MFCC values span about -350..+50):")
    for squared in (True, False):
        flags = {**FEATURE_DEFAULTS, "fft_magnitude_squared": squared}
        layer = MFCC(**flags)
        log_mel_err, mfcc_err, op_err, op_ref_err = [], [], [], []
        for start in tqdm(range(0, len(clips), batch_size), desc=f"squared={squared}", leave=False,
                           disable=None):
            batch = clips[start:start + batch_size]
            ref_log_mel = reference.log_mel_spectrogram(batch, **{
                k: v for k, v in flags.items() if k != "dct_num_features"})
            ref_mfcc = reference.dct(ref_log_mel, flags["dct_num_features"])
            layer_mfcc = layer(batch).numpy()
            log_mel_err.append(np.abs(layer.log_mel_spectrogram(batch).numpy() - ref_log_mel))
            mfcc_err.append(np.abs(layer_mfcc - ref_mfcc))
            seed = seed_ops_mfcc(batch, flags)
            if seed is not None:
                op_err.append(np.abs(layer_mfcc - seed))
                op_ref_err.append(np.abs(ref_mfcc - seed))
        rows = [("log-mel  layer vs reference", log_mel_err),
                ("MFCC     layer vs reference", mfcc_err),
                ("MFCC     layer vs seed TF ops", op_err),
                ("MFCC reference vs seed TF ops", op_ref_err)]
        print(f"  fft_magnitude_squared={squared}")
        for label, errors in rows:
            if errors:
                errors = np.concatenate(errors)
                print(f"    {label:31s} max {errors.max():.2e}  mean {errors.mean():.2e}")


def tflite_latency_ms(num_samples: int, runs: int, clip: np.ndarray) -> tuple[float, int]:
    """Median invoke time (1 thread) of the front end alone as float TFLite, and its size."""
    audio = keras.Input(shape=(num_samples,), batch_size=1)
    model = keras.Model(audio, MFCC()(audio))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    flatbuffer = converter.convert()
    interpreter = Interpreter(model_content=flatbuffer, num_threads=1)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], clip[None, :num_samples])
    for _ in range(10):  # warm-up
        interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times)), len(flatbuffer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path,
                        default=REPO_ROOT.parent / "shared" / "data" / "speech_commands_lite")
    parser.add_argument("--num-clips", type=int, default=500)
    parser.add_argument("--runs", type=int, default=300, help="timed TFLite invokes per model")
    args = parser.parse_args()

    clips = read_clips(args.data_dir, args.num_clips)
    report_errors(clips)

    print("\nTFLite front end alone (float, TFLITE_BUILTINS, 1 thread, median):")
    for label, samples in (("1 s clip (49 frames)", CLIP_SAMPLES),
                           ("one streaming frame", FRAME_SAMPLES)):
        latency, size = tflite_latency_ms(samples, args.runs, clips[0])
        print(f"  {label:22s} {samples:6d} samples  {latency:.3f} ms   ({size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
