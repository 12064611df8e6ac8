"""Training with the seed's recipe: staged learning rates, validation, best weights, resume.

TRAIN_DIR receives ``flags.json``, ``best_weights.weights.h5`` (best validation accuracy, ties go
to the later step as in the seed), ``last_weights.weights.h5``, ``training_log.csv``, TensorBoard
logs in ``logs/`` and a resumable backup in ``backup/``: a run killed at any moment continues from
its last backup with the same total number of steps (every file is written atomically, and a
lock keeps a second run out; ``kwsnb.train.state``).
"""
from __future__ import annotations

import contextlib
import functools
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from kwsnb.train import distribute, state
from kwsnb.train.flags import (BEST_WEIGHTS, FLAGS_FILE, LAST_WEIGHTS, TRAINING_LOG, Stages,
                               TrainError, expected_labels, load_flags, resolved_model_flags,
                               validation_interval)


def learning_rate_schedule(stages: Stages, kind: str):
    """The seed's schedules as a Keras schedule (so the optimizer's step drives it and a resumed
    run continues where it stopped). Step counts from 1 as in the seed."""
    import keras

    if kind == "linear" and len(stages.rates) == 1:
        return stages.rates[0]  # PiecewiseConstantDecay needs a boundary (IndexError without)
    if kind == "linear":  # the seed's name for piecewise-constant stages
        # Keras counts optimizer steps from 0, the seed from 1: stage i ends after its last step.
        boundaries = [int(b) - 1 for b in np.cumsum(stages.steps)[:-1]]
        return keras.optimizers.schedules.PiecewiseConstantDecay(
            boundaries=boundaries, values=list(stages.rates))
    if kind == "exp":
        rate0, rate_last = stages.rates[0], stages.rates[-1]
        return keras.optimizers.schedules.ExponentialDecay(
            rate0, decay_steps=stages.total, decay_rate=rate_last / rate0)
    raise TrainError(f"--lr_schedule {kind!r}: use linear or exp")


# ---------------------------------------------------------------------------------------------
# Train dir
# ---------------------------------------------------------------------------------------------


def build_model(flags: dict[str, Any]):
    """The architecture of the flags; TrainError naming the flag when its values cannot build."""
    from kwsnb import models

    try:
        return models.build(flags["model_name"], **resolved_model_flags(flags))
    except ValueError as error:
        raise TrainError(str(error)) from None


def load_trained_model(train_dir: str | Path, weights: str = BEST_WEIGHTS):
    """Rebuilds the model of a train_dir from flags.json and loads its best weights."""
    train_dir = Path(train_dir)
    flags = load_flags(train_dir)
    model = build_model(flags)
    path = train_dir / weights
    if not path.is_file():
        raise TrainError(f"{path} not found: train the model first (--train 1)")
    try:
        model.load_weights(path)
    except ValueError as error:
        raise TrainError(f"{path} does not fit the {flags['model_name']} model of "
                         f"{train_dir / FLAGS_FILE} ({error}); it was written by another model or "
                         "an older kwsnb (before the front end's normalization): retrain "
                         "it") from None
    except OSError as error:  # h5py: a file cut by a kill or a full disk
        raise TrainError(f"{path} cannot be read ({str(error).splitlines()[0]}): restore it from "
                         "a copy, or train again into another --train_dir") from None
    return model, flags


def _check_compatible(train_dir: Path, flags: dict[str, Any]) -> None:
    """Refuses to continue the run in ``train_dir`` with other weight-changing flags
    (``kwsnb.train.state.check_continuation``)."""
    state.check_continuation(train_dir, state.run_state(train_dir), flags)


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------

def _data(flags: dict[str, Any]):
    """The data set of the flags; downloads ``--data_url`` first when ``--data_dir`` is empty."""
    from data_setup import speech_commands
    from kwsnb import data

    data_dir = Path(flags["data_dir"])
    try:
        layout = speech_commands.check_layout(data_dir)
        if flags.get("data_url") and not layout.ok and data_dir.is_dir() \
                and any(data_dir.iterdir()):
            raise TrainError(
                f"--data_dir {data_dir} holds files but not a Speech Commands data set "
                f"({'; '.join(layout.problems)}); nothing in it was changed. --data_url "
                "downloads only into a new or empty folder: give another --data_dir to download "
                f"into, or --data_url '' to read {data_dir} as it is (see `python -m "
                "data_setup.speech_commands --help` to prepare one)")
        if flags.get("data_url") and not layout.ok:
            speech_commands.prepare(data_dir, source=flags["data_url"])
        return data.SpeechCommands.from_flags(flags)
    except (ValueError, OSError, speech_commands.DataSetupError) as error:
        raise TrainError(str(error)) from None


def finished_run(train_dir: str | Path) -> dict[str, Any] | None:
    """The flags of a training run in ``train_dir`` that ran all its steps (flags.json, best
    weights and one training-log row per validation interval), else None. A finished run is
    used as it is: ``kwsnb.notebooks.train`` skips training it again."""
    found = state.run_state(train_dir)
    return found.saved if found.kind == "finished" else None


def _best_validation_so_far(log_path: Path) -> float | None:
    values = [float(row["val_accuracy"]) for row in state.log_rows(log_path).values()
              if row.get("val_accuracy")]
    return max(values) if values else None


class _Checkpoints:
    """After each validation: the best weights (ties go to the later step, as in the seed),
    then the backup, each written atomically (``kwsnb.train.state``). Runs after the CSV
    logger: an epoch the backup records has its log row and best weights written."""

    def __new__(cls, train_dir: Path, best: float | None):
        import keras

        class Checkpoints(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                current = (logs or {}).get("val_accuracy")
                if current is not None and (checkpoints.best is None
                                            or current >= checkpoints.best):
                    checkpoints.best = float(current)
                    state.save_weights_atomic(self.model, train_dir / BEST_WEIGHTS)
                state.save_backup(self.model, train_dir, epoch + 1)

        checkpoints = Checkpoints()
        checkpoints.best = best
        return checkpoints


class _StepProgress:
    """tqdm bar over training steps (works in terminals and notebooks)."""

    def __new__(cls, total: int, initial: int):
        import keras
        from tqdm.auto import tqdm

        class StepProgress(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                # In a log file (no terminal) a line every 30 s, not one per step.
                self.bar = tqdm(total=total, initial=initial, unit="step", desc="training",
                                dynamic_ncols=True, mininterval=0.5 if sys.stderr.isatty() else 30)

            def on_train_batch_end(self, batch, logs=None):
                self.bar.update(1)
                if batch % 50 == 0 and logs:
                    self.bar.set_postfix(loss=f"{logs.get('loss', 0):.3f}",
                                         acc=f"{logs.get('accuracy', 0):.3f}", refresh=False)

            def on_epoch_end(self, epoch, logs=None):
                if logs and "val_accuracy" in logs:
                    self.bar.set_postfix(loss=f"{logs['loss']:.3f}", acc=f"{logs['accuracy']:.3f}",
                                         val_acc=f"{logs['val_accuracy']:.3f}")

            def on_train_end(self, logs=None):
                self.bar.close()

        return StepProgress()


def train(flags: dict[str, Any]) -> dict[str, Any]:
    """Trains a model as the seed does; returns the final flags (with labels). Resumes a killed
    run found in ``flags['train_dir']``. ``--distribute`` trains on several devices with the
    same meaning of every flag (``kwsnb.train.distribute``)."""
    started = time.monotonic()
    stages = Stages.from_flags(flags["how_many_training_steps"], flags["learning_rate"])
    schedule = learning_rate_schedule(stages, flags["lr_schedule"])
    if flags["eval_step_interval"] <= 0 or flags["batch_size"] <= 0:
        raise TrainError("--eval_step_interval and --batch_size must be positive")
    # First, before TensorFlow starts its devices: --cpu_devices splits the CPU, a TPU connects.
    strategy = distribute.strategy(flags)
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    if flags["batch_size"] % replicas:
        raise TrainError(f"--batch_size {flags['batch_size']} is the global batch: it must split "
                         f"evenly across the {replicas} replicas of --distribute "
                         f"{flags['distribute']}")
    # The chief (every run but a multi-worker one's other workers) writes --train_dir.
    train_dir = distribute.worker_dir(flags)
    build_model(flags)  # checks the model flags before any data is read
    found = state.run_state(train_dir)
    # Before any data is read: a rerun never changes what flags.json says the weights are.
    state.check_continuation(train_dir, found,
                             {**flags, "labels": expected_labels(flags)})
    if found.kind == "finished":
        state.check_not_in_use(train_dir, "using it")  # a run still writing its last files
        kept = ("train", "train_dir", "test_dir", "test_exclude", "stream_clips", "latency_runs")
        return {**found.saved, **{key: flags.get(key) for key in kept}}
    with state.locked(train_dir):
        return _train_locked(flags, train_dir, stages, schedule, strategy, started)


def _train_locked(flags, train_dir: Path, stages: Stages, schedule, strategy, started: float):
    """``train`` once it holds the train_dir's lock."""
    import keras

    from kwsnb import models

    found = state.run_state(train_dir)  # again: another run may have finished it meanwhile
    state.check_continuation(train_dir, found, {**flags, "labels": expected_labels(flags)})
    scope = strategy.scope if strategy is not None else contextlib.nullcontext
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    dataset = _data(flags)
    model_flags = {**flags.get("model_flags", {}), "label_count": len(dataset.labels)}
    flags = {**flags, "model_flags": model_flags, "labels": list(dataset.labels),
             "distribute": distribute.check_choice(flags.get("distribute")), "replicas": replicas}
    # --random_seed fixes the initial weights (one device or several: the same start).
    keras.utils.set_random_seed(flags["random_seed"])
    with scope():  # the model's and the optimizer's variables live on every replica
        model = build_model(flags)
    if replicas > 1:
        distribute.synchronize_batch_norm(model)  # batch statistics of the global batch
    flags["params"] = models.count_params(model)
    _check_compatible(train_dir, flags)
    if flags["normalize_features"]:
        adapt_front_end(model, dataset, flags)
    if flags.get("use_spec_augment"):
        mask_features_while_training(model, flags)
    previous_seconds = (found.saved or {}).get("training_seconds") or 0.0
    flags["training_seconds"] = previous_seconds
    if found.kind == "new":  # a resumed run's flags.json already says the same
        state.write_text_atomic(train_dir / FLAGS_FILE, json.dumps(flags, indent=2, default=str))

    keras.utils.set_random_seed(flags["random_seed"])
    with scope():
        if flags["optimizer"] == "adam":
            optimizer = keras.optimizers.Adam(learning_rate=schedule,
                                              epsilon=flags["optimizer_epsilon"])
        elif flags["optimizer"] == "momentum":
            optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=0.9)
        else:
            raise TrainError(f"--optimizer {flags['optimizer']!r}: use adam or momentum")
        model.compile(optimizer=optimizer,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])

    interval = validation_interval(stages.total, flags["eval_step_interval"])
    epochs = stages.total // interval

    # Global batches: under a strategy Keras splits each across the replicas.
    validation_data = distribute.dataset_for(
        dataset.dataset("validation", batch_size=flags["batch_size"], augment=False,
                        shuffle=False, repeat=False), strategy)

    log_path = train_dir / TRAINING_LOG
    with scope():  # the optimizer's variables must exist for the backup to load into them
        optimizer.build(model.trainable_variables)
    done_epochs = min(state.restore_backup(model, train_dir), epochs)
    done_steps = done_epochs * interval
    if done_epochs >= epochs:
        return _finish(model, flags, train_dir, previous_seconds, started)
    # A resumed run draws new batches (not the first ones again): the seed moves with the steps.
    train_data = distribute.dataset_for(
        dataset.dataset("training", batch_size=flags["batch_size"], augment=True, shuffle=True,
                        repeat=True, seed=flags["random_seed"] + done_steps), strategy)
    state.drop_log_rows_from(log_path, done_epochs)
    callbacks = [
        keras.callbacks.LambdaCallback(on_epoch_end=_log_learning_rate(optimizer)),
        keras.callbacks.CSVLogger(str(log_path), append=True),
        keras.callbacks.TensorBoard(str(train_dir / "logs"), update_freq=interval,
                                    write_graph=False),
        _StepProgress(total=stages.total, initial=done_steps),
        # Last: an epoch the backup records has its log row and best weights written, and a
        # kill before it re-runs the epoch, whose stale row was just dropped.
        _Checkpoints(train_dir, _best_validation_so_far(log_path)),
    ]
    with distribute.keras_fit_fixes(model, strategy, train_data):  # multiworker only
        model.fit(train_data, epochs=epochs, initial_epoch=done_epochs, steps_per_epoch=interval,
                  validation_data=validation_data, callbacks=callbacks, verbose=0,
                  shuffle=False)  # the tf.data pipeline shuffles
    return _finish(model, flags, train_dir, previous_seconds, started)


def _finish(model, flags, train_dir: Path, previous_seconds: float, started: float):
    if not (train_dir / BEST_WEIGHTS).exists():  # e.g. an empty validation split
        state.save_weights_atomic(model, train_dir / BEST_WEIGHTS)
    # Wall-clock time of training, summed over resumed runs (the reports quote it).
    flags["training_seconds"] = round(previous_seconds + time.monotonic() - started, 1)
    state.write_text_atomic(train_dir / FLAGS_FILE, json.dumps(flags, indent=2, default=str))
    state.save_weights_atomic(model, train_dir / LAST_WEIGHTS)
    return flags


ADAPTATION_CLIPS = 1000


def adapt_front_end(model, dataset, flags: dict[str, Any], clips: int = ADAPTATION_CLIPS):
    """Normalizes the front end's coefficients on augmented training clips (see
    ``kwsnb.features.MFCC.adapt``: one int8 scale then resolves the small coefficients too). A resumed run gets them back from its backup with the other weights."""
    from kwsnb.streaming import front_end_layer, mfcc_of

    batch = dataset.dataset("training", batch_size=clips, augment=True, shuffle=True,
                            repeat=False, seed=flags["random_seed"])
    audio, _ = next(iter(batch))
    mfcc_of(front_end_layer(model)).adapt(audio.numpy())


def mask_features_while_training(model, flags: dict[str, Any]) -> None:
    """SpecAugment (``--use_spec_augment 1``): the front end masks ``--time_masks_number``
    spans of up to ``--time_mask_max_size`` frames and ``--frequency_masks_number`` spans of up
    to ``--frequency_mask_max_size`` coefficients of each training example's MFCCs
    (``kwsnb.data.spec_augment``), after the normalization, so a mask is the coefficients' mean.
    Validation, inference and every exported model see unmasked features."""
    from kwsnb import data
    from kwsnb.streaming import front_end_layer, mfcc_of

    options = {name: int(flags[name]) for name in (
        "time_masks_number", "time_mask_max_size", "frequency_masks_number",
        "frequency_mask_max_size")}
    mfcc_of(front_end_layer(model)).training_transform = functools.partial(
        data.spec_augment, **options)


def _log_learning_rate(optimizer):
    """Adds the learning rate in force to the epoch's logs (CSV and TensorBoard show it)."""
    def on_epoch_end(epoch, logs):
        if logs is not None:
            logs["learning_rate"] = float(optimizer.learning_rate)
    return on_epoch_end
