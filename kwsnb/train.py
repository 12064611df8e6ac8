"""Training with kws_streaming's recipe and command lines.

Any of the seed's eight command lines runs here with only the module name replaced::

    python -m kwsnb.train --data_url '' --data_dir DATA --train_dir RUN \\
        --how_many_training_steps 20000,20000,20000,20000 \\
        --learning_rate 0.001,0.0005,0.0001,0.00002 ... mobilenet --cnn1_filters 32 ...

Flags before the model name are the seed's data/feature/training flags; flags after it are the
architecture's. A feature flag left out takes the architecture's default (the seed's recipe for
that model), not kws_streaming's generic parser default, so a short command still trains the
published configuration. Flags the seed has but kwsnb does not implement are refused with a clear
error when set to anything but their default, never silently ignored.

TRAIN_DIR receives ``flags.json``, ``best_weights.weights.h5`` (best validation accuracy, ties go
to the later step as in the seed), ``last_weights.weights.h5``, ``training_log.csv``, TensorBoard
logs in ``logs/`` and a resumable backup in ``backup/``: a run killed at any moment continues from
its last backup with the same total number of steps.
"""
from __future__ import annotations

import argparse
import ast
import csv
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

FLAGS_FILE = "flags.json"
BEST_WEIGHTS = "best_weights.weights.h5"
LAST_WEIGHTS = "last_weights.weights.h5"
TRAINING_LOG = "training_log.csv"
OFFICIAL_V2_URL = "https://storage.googleapis.com/download.tensorflow.org/data/speech_commands_v0.02.tar.gz"


class TrainError(Exception):
    """A problem with flags, data or a train_dir, explained for the user."""


# ---------------------------------------------------------------------------------------------
# Flags
# ---------------------------------------------------------------------------------------------

# The seed's base flags that kwsnb implements: name -> (type, default, help). None as a default
# means "the architecture's default" (feature flags) or "not set".
_BASE_FLAGS: dict[str, tuple[type, Any, str]] = {
    "data_url": (str, OFFICIAL_V2_URL, "archive to download into --data_dir when it holds no data; '' never downloads"),
    "data_dir": (str, "data/speech_commands_v2", "Speech Commands folder (see `python -m data_setup.speech_commands`)"),
    "train_dir": (str, "runs/model", "where flags, checkpoints, logs and reports go"),
    "wanted_words": (str, "yes,no,up,down,left,right,on,off,stop,go", "comma-separated keywords"),
    "silence_percentage": (float, 10.0, "share of silence examples, %% of keyword examples"),
    "unknown_percentage": (float, 10.0, "share of unknown-word examples, %% of keyword examples"),
    "validation_percentage": (float, 10.0, "speaker-hash validation share (%%)"),
    "testing_percentage": (float, 10.0, "speaker-hash testing share (%%)"),
    "split_by": (str, "auto", "hash (the seed), lists (validation_list.txt/testing_list.txt) or auto"),
    "time_shift_ms": (float, 100.0, "random time shift range"),
    "resample": (float, 0.15, "random time-stretch range"),
    "background_frequency": (float, 0.8, "probability of mixing background noise"),
    "background_volume": (float, 0.1, "maximum gain of the background noise"),
    "volume_resample": (float, 0.0, "random volume range: gain in [1-v, 1+v]"),
    # kwsnb's additions (see kwsnb.data): noise levels that cover louder test-time silence.
    "background_rms": (float, None, "rescale every noise file to this RMS before mixing"),
    "silence_volume": (float, None, "maximum gain of the noise in silence examples"),
    "eval_silence_noise": (int, 0, "1: validation/test silence is seeded noise, not zeros"),
    "clip_duration_ms": (int, 1000, "clip length"),
    "sample_rate": (int, 16000, "sample rate"),
    "how_many_training_steps": (str, "10000,10000,10000", "steps of each stage, comma-separated"),
    "learning_rate": (str, "0.0005,0.0001,0.00002", "learning rate of each stage, comma-separated"),
    "lr_schedule": (str, "linear", "linear (piecewise constant per stage, as the seed) or exp"),
    "optimizer": (str, "adam", "adam or momentum"),
    "optimizer_epsilon": (float, 1e-8, "Adam epsilon"),
    "l2_weight_decay": (float, 0.0, "L2 penalty on kernels (added through the architecture)"),
    "batch_size": (int, 100, "clips per step"),
    "eval_step_interval": (int, 400, "validate every this many steps"),
    "save_step_interval": (int, 100, "kept for compatibility; kwsnb backs up at every validation"),
    "train": (int, 1, "1: train then evaluate; 0: only evaluate an existing --train_dir"),
    # kwsnb's additions: also score on a folder in the official test-set layout.
    "test_dir": (str, None, "also evaluate on this folder (_silence_, _unknown_, word folders)"),
    "test_exclude": (str, "", "comma-separated label folders of --test_dir to leave out"),
    "stream_clips": (int, 1000, "test clips the streaming formats run on (0: all)"),
    "latency_runs": (int, 200, "invoke() calls per latency median (0: skip latency)"),
    "random_seed": (int, 0, "seed of the weights' initialization and the order of examples"),
    "verbosity": (str, "INFO", "kept for compatibility"),
    # Feature flags: default None = the architecture's default (its seed command line).
    "window_size_ms": (float, None, "MFCC window"),
    "window_stride_ms": (float, None, "MFCC stride"),
    "mel_num_bins": (int, None, "mel bands"),
    "mel_lower_edge_hertz": (float, None, "lowest mel edge"),
    "mel_upper_edge_hertz": (float, None, "highest mel edge"),
    "dct_num_features": (int, None, "MFCCs kept"),
    "fft_magnitude_squared": (int, None, "1: power spectrum, 0: magnitude"),
    # kwsnb's addition (kwsnb.features.MFCC.adapt); 0 keeps the seed's MFCCs.
    "normalize_features": (int, 0, "1: centre the MFCCs and cap coefficient 0's spread before "
                                   "training (int8 then tracks float; see docs)"),
    "use_spec_augment": (int, 0, "1: SpecAugment-style time/frequency masking while training"),
    "time_masks_number": (int, 2, "SpecAugment time masks"),
    "time_mask_max_size": (int, 10, "SpecAugment longest time mask (frames)"),
    "frequency_masks_number": (int, 2, "SpecAugment frequency masks"),
    "frequency_mask_max_size": (int, 5, "SpecAugment widest frequency mask (coefficients)"),
}

_FEATURE_FLAGS = ("window_size_ms", "window_stride_ms", "mel_num_bins", "mel_lower_edge_hertz",
                  "mel_upper_edge_hertz", "dct_num_features", "fft_magnitude_squared")

# The seed's flags kwsnb does not implement: name -> the only value accepted (the seed default,
# or the value every 30k recipe uses).
_UNSUPPORTED_FLAGS: dict[str, Any] = {
    "feature_type": "mfcc_op",
    "preprocess": "raw",
    "split_data": 1,
    "sp_time_shift_ms": 0.0,
    "sp_resample": 0.0,
    "preemph": 0.0,
    "window_type": "hann",
    "log_epsilon": 1e-12,
    "use_tf_fft": 0,
    "mel_non_zero_only": 1,
    "use_spec_cutout": 0,
    "spec_cutout_masks_number": 3,
    "spec_cutout_time_mask_size": 10,
    "spec_cutout_frequency_mask_size": 5,
    "return_softmax": 0,
    "pick_deterministically": 0,
    "start_checkpoint": "",
    "novograd_beta_1": 0.95,
    "novograd_beta_2": 0.5,
    "novograd_weight_decay": 0.001,
    "novograd_grad_averaging": 0,
}


def parse_flag_value(text: str, default: Any) -> Any:
    """Parses a seed-style flag string ("32,64", "(3,1),(3,1)", "'relu','relu'", "") into the
    type of ``default``."""
    text = text.strip()
    if isinstance(default, bool):
        if text.lower() in ("1", "true"):
            return True
        if text.lower() in ("0", "false"):
            return False
        raise ValueError(f"expected 0 or 1, got {text!r}")
    if isinstance(default, (list, tuple)):
        if text == "":
            return []
        value = _literal(text)
        if not isinstance(value, (list, tuple)):
            value = [value]
        return list(value)
    if text == "" and (default is None or isinstance(default, str)):
        return ""
    if isinstance(default, str) or default is None:
        value = _literal(text)
        return value if default is None else str(value)
    if isinstance(default, int):
        return int(float(text)) if float(text).is_integer() else float(text)
    if isinstance(default, float):
        return float(text)
    return _literal(text)


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        try:
            return ast.literal_eval(f"[{text}]")
        except (ValueError, SyntaxError):
            return text


def _base_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kwsnb.train",
        description="Train, quantize, evaluate and stream a kwsnb model with kws_streaming's flags.",
        epilog="Then the model name and its flags, e.g. `mobilenet --cnn1_filters 32`. "
               "`python -m kwsnb.train MODEL --help` lists the flags of one architecture.")
    for name, (kind, default, help_text) in _BASE_FLAGS.items():
        shown = "the architecture's default" if default is None else repr(default)
        parser.add_argument(f"--{name}", type=kind, default=default, help=f"{help_text} [{shown}]")
    for name, accepted in _UNSUPPORTED_FLAGS.items():
        parser.add_argument(f"--{name}", type=type(accepted), default=accepted,
                            help=argparse.SUPPRESS)
    return parser


def parse_command_line(argv: Sequence[str]) -> dict[str, Any]:
    """Parses a seed command line into one flat dict of flags (base flags + ``model_name`` +
    ``model_flags``)."""
    from kwsnb import models

    argv = list(argv)
    model_position = next((i for i, arg in enumerate(argv) if arg in models.MODELS), None)
    base_argv = argv if model_position is None else argv[:model_position]
    model_argv = [] if model_position is None else argv[model_position + 1:]
    parser = _base_parser()
    if model_position is None and not any(a in ("-h", "--help") for a in argv):
        words = [a for a in argv if not a.startswith("-")]
        stray = [w for w in words if w.isidentifier() and w not in models.MODELS]
        raise TrainError(
            (f"unknown model name {stray[-1]!r}. " if stray else "no model name given. ")
            + f"Choose one of: {', '.join(models.MODELS)} (after the training flags).")
    base, unknown = parser.parse_known_args(base_argv)
    if unknown:
        raise TrainError(f"unknown training flag(s) {' '.join(unknown)}; "
                         "`python -m kwsnb.train --help` lists them")
    flags = vars(base)
    for name, accepted in _UNSUPPORTED_FLAGS.items():
        if flags[name] != accepted:
            raise TrainError(f"--{name}={flags[name]!r} is not supported by kwsnb yet (only "
                             f"{accepted!r}); remove the flag to use kwsnb's equivalent")
        del flags[name]
    flags["model_name"] = argv[model_position]
    flags["model_flags"] = parse_model_flags(flags["model_name"], model_argv)
    return flags


def parse_model_flags(model_name: str, argv: Sequence[str]) -> dict[str, Any]:
    """Parses the architecture's flags (after the model name) against its defaults."""
    from kwsnb import models

    defaults = models.default_flags(model_name)
    parser = argparse.ArgumentParser(prog=f"python -m kwsnb.train ... {model_name}",
                                     description=f"Flags of the {model_name} architecture.")
    model_only = {k: v for k, v in defaults.items() if k not in _FEATURE_FLAGS}
    for name, default in model_only.items():
        parser.add_argument(f"--{name}", type=str, default=None, help=f"default: {default!r}")
    parsed, unknown = parser.parse_known_args(list(argv))
    if unknown:
        raise TrainError(f"unknown {model_name} flag(s) {' '.join(unknown)}; valid flags: "
                         + ", ".join(f"--{k}" for k in model_only))
    overrides = {}
    for name, text in vars(parsed).items():
        if text is None:
            continue
        try:
            overrides[name] = parse_flag_value(text, model_only[name])
        except ValueError as error:
            raise TrainError(f"--{name} {text!r}: {error}") from None
    return overrides


@dataclass(frozen=True)
class Stages:
    """The seed's staged schedule: steps and learning rate of each stage."""

    steps: tuple[int, ...]
    rates: tuple[float, ...]

    @classmethod
    def from_flags(cls, steps: str, rates: str) -> "Stages":
        try:
            step_list = tuple(int(s) for s in str(steps).split(",") if s.strip())
            rate_list = tuple(float(r) for r in str(rates).split(",") if r.strip())
        except ValueError:
            raise TrainError(f"--how_many_training_steps {steps!r} and --learning_rate {rates!r} "
                             "must be comma-separated numbers") from None
        if not step_list or len(step_list) != len(rate_list):
            raise TrainError("--how_many_training_steps and --learning_rate must be lists of the "
                             f"same length, got {len(step_list)} and {len(rate_list)}")
        if any(s <= 0 for s in step_list) or any(r <= 0 for r in rate_list):
            raise TrainError("--how_many_training_steps and --learning_rate must be positive")
        return cls(step_list, rate_list)

    @property
    def total(self) -> int:
        return sum(self.steps)


def learning_rate_schedule(stages: Stages, kind: str):
    """The seed's schedules as a Keras schedule (so the optimizer's step drives it and a resumed
    run continues where it stopped). Step counts from 1 as in the seed."""
    import keras

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

def load_flags(train_dir: str | Path) -> dict[str, Any]:
    path = Path(train_dir) / FLAGS_FILE
    if not path.is_file():
        raise TrainError(f"{path} not found: {train_dir} is not a kwsnb train_dir "
                         "(train one with `python -m kwsnb.train --train_dir ...`)")
    return json.loads(path.read_text())


def resolved_model_flags(flags: dict[str, Any]) -> dict[str, Any]:
    """Architecture flags with the command line's feature flags applied."""
    model_flags = dict(flags.get("model_flags", {}))
    for name in _FEATURE_FLAGS:
        if flags.get(name) is not None:
            model_flags[name] = flags[name]
    return model_flags


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
    return model, flags


def _check_compatible(train_dir: Path, flags: dict[str, Any]) -> None:
    """Refuses to mix a train_dir with another model or label set."""
    if not (train_dir / FLAGS_FILE).is_file():
        return
    saved = load_flags(train_dir)
    for key in ("model_name", "labels"):
        if key in flags and saved.get(key) != flags.get(key):
            raise TrainError(f"{train_dir} holds a {key} of {saved.get(key)!r}, not "
                             f"{flags.get(key)!r}: use another --train_dir or delete it")
    def as_saved(values):  # flags.json turns tuples into lists
        return json.loads(json.dumps(values, default=str))

    if as_saved(resolved_model_flags(saved)) != as_saved(resolved_model_flags(flags)):
        raise TrainError(f"{train_dir} was trained with other model flags "
                         f"({resolved_model_flags(saved)}); use another --train_dir or delete it")


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------

def _data(flags: dict[str, Any]):
    """The data set of the flags; downloads ``--data_url`` first when ``--data_dir`` is empty."""
    from data_setup import speech_commands
    from kwsnb import data

    data_dir = Path(flags["data_dir"])
    try:
        if flags.get("data_url") and not speech_commands.check_layout(data_dir).ok:
            speech_commands.prepare(data_dir, source=flags["data_url"])
        return data.SpeechCommands.from_flags(flags)
    except (ValueError, OSError, speech_commands.DataSetupError) as error:
        raise TrainError(str(error)) from None


def _best_validation_so_far(log_path: Path) -> float | None:
    if not log_path.is_file():
        return None
    with log_path.open() as f:
        values = [float(row["val_accuracy"]) for row in csv.DictReader(f) if row.get("val_accuracy")]
    return max(values) if values else None


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
    run found in ``flags['train_dir']``."""
    import keras

    from kwsnb import models

    started = time.monotonic()
    stages = Stages.from_flags(flags["how_many_training_steps"], flags["learning_rate"])
    schedule = learning_rate_schedule(stages, flags["lr_schedule"])
    if flags["eval_step_interval"] <= 0 or flags["batch_size"] <= 0:
        raise TrainError("--eval_step_interval and --batch_size must be positive")
    train_dir = Path(flags["train_dir"])
    build_model(flags)  # checks the model flags before any data is read
    dataset = _data(flags)
    model_flags = {**flags.get("model_flags", {}), "label_count": len(dataset.labels)}
    flags = {**flags, "model_flags": model_flags, "labels": list(dataset.labels)}
    model = build_model(flags)
    flags["params"] = models.count_params(model)
    _check_compatible(train_dir, flags)
    if flags["normalize_features"]:
        adapt_front_end(model, dataset, flags)
    previous_seconds = (load_flags(train_dir).get("training_seconds") or 0.0
                        if (train_dir / FLAGS_FILE).is_file() else 0.0)
    flags["training_seconds"] = previous_seconds
    train_dir.mkdir(parents=True, exist_ok=True)
    (train_dir / FLAGS_FILE).write_text(json.dumps(flags, indent=2, default=str))

    keras.utils.set_random_seed(flags["random_seed"])
    if flags["optimizer"] == "adam":
        optimizer = keras.optimizers.Adam(learning_rate=schedule, epsilon=flags["optimizer_epsilon"])
    elif flags["optimizer"] == "momentum":
        optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=0.9)
    else:
        raise TrainError(f"--optimizer {flags['optimizer']!r}: use adam or momentum")
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])

    interval = validation_interval(stages.total, flags["eval_step_interval"])
    epochs = stages.total // interval

    validation_data = dataset.dataset("validation", batch_size=flags["batch_size"], augment=False,
                                      shuffle=False, repeat=False)

    log_path = train_dir / TRAINING_LOG
    # double_checkpoint: a kill while the backup is written falls back to the previous one.
    backup = keras.callbacks.BackupAndRestore(str(train_dir / "backup"), delete_checkpoint=False,
                                              double_checkpoint=True)
    done_steps = _restored_steps(train_dir, interval)
    # A resumed run draws new batches (not the first ones again): the seed moves with the steps.
    train_data = dataset.dataset("training", batch_size=flags["batch_size"], augment=True,
                                 shuffle=True, repeat=True, seed=flags["random_seed"] + done_steps)
    best = _best_validation_so_far(log_path)
    callbacks = [
        backup,
        keras.callbacks.LambdaCallback(on_epoch_end=_log_learning_rate(optimizer)),
        keras.callbacks.ModelCheckpoint(
            str(train_dir / BEST_WEIGHTS), monitor="val_accuracy", mode="max",
            save_best_only=True, save_weights_only=True,
            initial_value_threshold=None if best is None else best - 1e-9),
        keras.callbacks.CSVLogger(str(log_path), append=True),
        keras.callbacks.TensorBoard(str(train_dir / "logs"), update_freq=interval,
                                    write_graph=False),
        _StepProgress(total=stages.total, initial=min(done_steps, stages.total)),
    ]
    if done_steps >= stages.total:
        return flags  # already trained
    model.fit(train_data, epochs=epochs, steps_per_epoch=interval, validation_data=validation_data,
              callbacks=callbacks, verbose=0, shuffle=False)  # the tf.data pipeline shuffles
    model.save_weights(train_dir / LAST_WEIGHTS)
    if not (train_dir / BEST_WEIGHTS).exists():  # e.g. an empty validation split
        model.save_weights(train_dir / BEST_WEIGHTS)
    # Wall-clock time of training, summed over resumed runs (the reports quote it).
    flags["training_seconds"] = round(previous_seconds + time.monotonic() - started, 1)
    (train_dir / FLAGS_FILE).write_text(json.dumps(flags, indent=2, default=str))
    return flags


ADAPTATION_CLIPS = 1000


def adapt_front_end(model, dataset, flags: dict[str, Any], clips: int = ADAPTATION_CLIPS):
    """Normalizes the front end's coefficients on augmented training clips (see
    ``kwsnb.features.MFCC.adapt``: one int8 scale then resolves the small coefficients too). A resumed run gets them back from its backup with the other weights."""
    from kwsnb import export as exporting

    batch = dataset.dataset("training", batch_size=clips, augment=True, shuffle=True,
                            repeat=False, seed=flags["random_seed"])
    audio, _ = next(iter(batch))
    exporting.mfcc_of(exporting.front_end_layer(model)).adapt(audio.numpy())


def _log_learning_rate(optimizer):
    """Adds the learning rate in force to the epoch's logs (CSV and TensorBoard show it)."""
    def on_epoch_end(epoch, logs):
        if logs is not None:
            logs["learning_rate"] = float(optimizer.learning_rate)
    return on_epoch_end


def validation_interval(total_steps: int, requested: int) -> int:
    """Keras epochs are equal-length, so validation runs every ``requested`` steps rounded down
    to a divisor of the total: the run then ends exactly at the seed's step count."""
    interval = min(requested, total_steps)
    while total_steps % interval:
        interval -= 1
    return interval


def _restored_steps(train_dir: Path, interval: int) -> int:
    """Steps already done by an interrupted run, from the backup's metadata."""
    if (train_dir / LAST_WEIGHTS).is_file() and (train_dir / TRAINING_LOG).is_file():
        with (train_dir / TRAINING_LOG).open() as f:
            return sum(1 for _ in csv.DictReader(f)) * interval
    meta = train_dir / "backup" / "training_metadata.json"
    if not meta.is_file():
        return 0
    state = json.loads(meta.read_text())
    return int(state.get("epoch", 0)) * interval  # BackupAndRestore counts finished epochs


def run(argv: Sequence[str], progress: bool | None = None) -> tuple[dict, list[dict]]:
    """What ``python -m kwsnb.train ARGV`` does, for notebooks and scripts: trains (or, with
    ``--train 0``, reloads), exports and evaluates. Returns (flags, reports); raises TrainError.
    ``kwsnb.seed.seed_command(...)`` makes ``argv`` from the seed's command lines."""
    flags = parse_command_line([str(arg) for arg in argv])
    flags = train(flags) if flags["train"] else evaluation_flags(flags)
    return flags, run_evaluation(flags, progress=progress)


def main(argv: Sequence[str] | None = None) -> int:
    from kwsnb import evaluate

    try:
        _, reports = run(sys.argv[1:] if argv is None else argv)
        for report in reports:
            print(evaluate.format_report(report))
    except TrainError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def expected_labels(flags: dict[str, Any]) -> list[str]:
    """The label list a data set read with these flags has (see kwsnb.data.SpeechCommands)."""
    from kwsnb import data

    words = [w.strip().lower() for w in str(flags["wanted_words"]).split(",") if w.strip()]
    specials = flags["silence_percentage"] > 0 or flags["unknown_percentage"] > 0
    return ([data.SILENCE_LABEL, data.UNKNOWN_WORD_LABEL] if specials else []) + words


def evaluation_flags(flags: dict[str, Any]) -> dict[str, Any]:
    """``--train 0``: the saved flags of ``--train_dir``, checked against the command line's
    model and labels; the command line's --test_dir/--test_exclude apply."""
    train_dir = flags["train_dir"]
    saved = load_flags(train_dir)
    if saved.get("model_name") != flags["model_name"]:
        raise TrainError(f"{train_dir} holds a {saved.get('model_name')} model, not "
                         f"{flags['model_name']}: give the model it was trained with, or "
                         "another --train_dir")
    if saved.get("labels") != expected_labels(flags):
        raise TrainError(f"{train_dir} was trained on labels {saved.get('labels')}, but this "
                         f"command line asks for {expected_labels(flags)}: give the same "
                         "--wanted_words (and silence/unknown percentages) it was trained with")
    evaluation = ("test_dir", "test_exclude", "stream_clips", "latency_runs")
    return {**saved, **{key: flags.get(key) for key in evaluation}}


def run_evaluation(flags: dict[str, Any], progress: bool | None = None) -> list[dict]:
    """Exports every format and writes report.json (the data set's test split, or its
    validation split when it has no testing clips), then report_<folder>.json for
    ``--test_dir``. Returns the reports."""
    from kwsnb import evaluate
    from kwsnb.export import ExportError

    progress = sys.stderr.isatty() if progress is None else progress
    test_dirs = [None] + ([flags["test_dir"]] if flags.get("test_dir") else [])
    reports = []
    for test_dir in test_dirs:
        exclude = str(flags.get("test_exclude") or "").split(",") if test_dir else ()
        try:
            report = evaluate.evaluate_train_dir(
                flags["train_dir"], test_dir=test_dir, exclude=exclude, progress=progress,
                stream_clips=flags.get("stream_clips") or None,
                latency_runs=flags.get("latency_runs", evaluate.LATENCY_RUNS))
        except (evaluate.EvaluationError, ExportError) as error:
            raise TrainError(str(error)) from None
        reports.append(report)
    return reports


if __name__ == "__main__":
    sys.exit(main())
