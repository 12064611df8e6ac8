"""Peer baseline for SC-lite-10: the CNN of TensorFlow's "simple audio recognition" tutorial.

The model a newcomer would otherwise pick (https://www.tensorflow.org/tutorials/audio/simple_audio):
STFT magnitude (frame 255, step 128) -> Resizing(32, 32) -> Normalization -> Conv2D(32, 3) ->
Conv2D(64, 3) -> MaxPool -> Dropout(0.25) -> Flatten -> Dense(128) -> Dropout(0.5) -> Dense,
about 1.6M parameters. It is trained the way benchmarks/sc_lite10.py trains the eight (same data,
labels, augmentation, stream windows, noise levels, batch, steps and learning-rate schedule)
and scored on the same test folder. Not one of kwsnb's architectures, so it lives here, not in kwsnb/models/.

    python benchmarks/simple_audio_baseline.py   # -> models/simple_audio_cnn/report_*.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from kwsnb import data  # noqa: E402
from kwsnb import train as training  # noqa: E402
from kwsnb.models import seed  # noqa: E402

NAME = "simple_audio_cnn"
STEPS, LEARNING_RATES, RECIPE = seed.sc_lite10_recipe()
EXCLUDE = seed.SC_LITE10_TEST_EXCLUDE.split(",")
TEST_FOLDER = "speech_commands_test_lite"


def build(num_labels: int, normalization_audio):
    import keras
    import tensorflow as tf
    from keras import layers

    class Spectrogram(layers.Layer):
        """|STFT| with the tutorial's frame 255 / step 128, as [batch, time, freq, 1]."""

        def call(self, audio):
            spectrum = tf.abs(tf.signal.stft(audio, frame_length=255, frame_step=128))
            return spectrum[..., tf.newaxis]

    spectrogram = Spectrogram(name="spectrogram")
    normalization = layers.Normalization(name="normalization")
    # The tutorial adapts the normalization to training spectrograms (resized as the model sees them).
    resize = layers.Resizing(32, 32, name="resize")
    normalization.adapt(resize(spectrogram(normalization_audio)))
    audio = keras.Input(shape=(16000,), name="audio")
    x = resize(spectrogram(audio))
    x = normalization(x)
    x = layers.Conv2D(32, 3, activation="relu", name="conv_1")(x)
    x = layers.Conv2D(64, 3, activation="relu", name="conv_2")(x)
    x = layers.MaxPooling2D(name="pool")(x)
    x = layers.Dropout(0.25, name="dropout_1")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(128, activation="relu", name="dense")(x)
    x = layers.Dropout(0.5, name="dropout_2")(x)
    logits = layers.Dense(num_labels, name="logits")(x)
    return keras.Model(audio, logits, name=NAME)


def main(argv=None) -> int:
    import keras
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_root", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--models_dir", type=Path, default=REPO / "models")
    parser.add_argument("--steps", default=STEPS)
    parser.add_argument("--learning_rates", default=LEARNING_RATES)
    args = parser.parse_args(argv)
    train_folder = args.data_root / "speech_commands_lite"
    test_dir = args.data_root / TEST_FOLDER
    if not train_folder.is_dir():
        print(f"error: {train_folder} not found: give --data_root", file=sys.stderr)
        return 2
    out = args.models_dir / NAME
    out.mkdir(parents=True, exist_ok=True)

    # The same data flags as the eight: the seed's defaults plus the benchmark's recipe.
    recipe = training.parse_command_line([*RECIPE, "--data_dir", str(train_folder),
                                          "svdf"])
    dataset = data.SpeechCommands.from_flags(recipe)
    stages = training.Stages.from_flags(args.steps, args.learning_rates)
    interval = training.validation_interval(stages.total, recipe["eval_step_interval"])
    keras.utils.set_random_seed(0)
    model = build(len(dataset.labels), dataset.arrays("training")[0][:1000])
    model.compile(optimizer=keras.optimizers.Adam(
                      training.learning_rate_schedule(stages, "linear")),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    best = out / training.BEST_WEIGHTS
    started = time.monotonic()
    model.fit(dataset.dataset("training", batch_size=recipe["batch_size"]),
              validation_data=dataset.dataset("validation", batch_size=recipe["batch_size"]),
              epochs=stages.total // interval, steps_per_epoch=interval, verbose=2,
              shuffle=False,  # the pipeline shuffles
              callbacks=[keras.callbacks.ModelCheckpoint(
                  str(best), monitor="val_accuracy", mode="max", save_best_only=True,
                  save_weights_only=True)])
    seconds = time.monotonic() - started
    model.load_weights(best)

    audio, labels = data.read_test_folder(test_dir, dataset.labels, EXCLUDE)
    predictions = np.argmax(model.predict(audio, batch_size=200, verbose=0), axis=-1)
    accuracy = float(np.mean(predictions == labels))
    params = int(sum(np.prod(v.shape) for v in model.trainable_weights))
    report = {
        "model": NAME, "params": params, "labels": list(dataset.labels),
        "formats": {"keras": {"accuracy": accuracy, "size_bytes": 4 * params,
                              "latency_ms": None}},
        "test_set": {"source": "folder", "name": test_dir.name, "clips": int(len(labels)),
                     "exclude": EXCLUDE},
        "training_seconds": round(seconds, 1),
        "recipe": {"steps": args.steps, "learning_rates": args.learning_rates,
                   "flags": RECIPE},
    }
    report_path = out / f"report_{test_dir.name}.json"
    report_path.write_text(json.dumps(report, indent=2))
    print(f"{NAME}: {params:,} parameters, {100 * accuracy:.1f}% on {len(labels)} clips of "
          f"{test_dir.name} ({', '.join(EXCLUDE)} left out); trained "
          f"{seconds / 60:.1f} min -> {report_path}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
