"""The seed's command-line flags: parsing a kws_streaming command line, saved flags, labels.

Flags before the model name are the seed's data/feature/training flags; flags after it are the
architecture's. A feature flag left out takes the architecture's default (the seed's recipe for
that model), not kws_streaming's generic parser default, so a short command still trains the
published configuration. Flags the seed has but kwsnb does not implement are refused with a clear
error when set to anything but their default, never silently ignored.
"""
from __future__ import annotations

import argparse
import ast
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence


FLAGS_FILE = "flags.json"


BEST_WEIGHTS = "best_weights.weights.h5"


LAST_WEIGHTS = "last_weights.weights.h5"


TRAINING_LOG = "training_log.csv"


OFFICIAL_V2_URL = "https://storage.googleapis.com/download.tensorflow.org/data/speech_commands_v0.02.tar.gz"


class TrainError(Exception):
    """A problem with flags, data or a train_dir, explained for the user."""


# The seed's base flags that kwsnb implements: name -> (type, default, help). None as a default
# means "the architecture's default" (feature flags) or "not set".
_BASE_FLAGS: dict[str, tuple[type, Any, str]] = {
    "data_url": (str, OFFICIAL_V2_URL, "archive to download into --data_dir when it holds no data; '' never downloads"),
    "data_dir": (str, "data/speech_commands_v2", "Speech Commands folder (see `python -m data_setup.speech_commands`)"),
    "train_dir": (str, "runs/model", "where flags, checkpoints, logs and reports go"),
    "wanted_words": (str, "yes,no,up,down,left,right,on,off,stop,go", "comma-separated keywords"),
    "silence_percentage": (float, 10.0, "share of silence examples, %% of keyword examples"),
    "unknown_percentage": (float, 10.0, "share of unknown-word examples, %% of keyword examples"),
    "extra_unknown_dir": (str, "", "another Speech Commands-layout folder (e.g. `python -m data_setup.synthetic --words common`, or the TTS Speech Commands set) whose training clips add _unknown_ examples; its folders of wanted words are skipped"),
    "extra_unknown_percentage": (float, 0.0, "_unknown_ examples added from --extra_unknown_dir or --tts_unknown_words, %% of training keyword examples"),
    "tts_unknown_words": (str, "", "comma-separated non-keywords your data has few clips of (e.g. on,off), spoken by offline TTS (kwsnb.data.tts_unknown; made once into the kwsnb cache) as the extra _unknown_ examples; instead of --extra_unknown_dir"),
    "unknown_with_replacement": (int, 0, "1: repeat the training split's unknown-word clips (each repeat augmented afresh) when there are fewer than --unknown_percentage asks for; 0 takes each once, as the seed"),
    "stream_window_percentage": (float, 0.0, "share (%%) of each training batch cut from streams of training words at random offsets, labelled by the speech inside (kwsnb.data.stream_windows); 0 trains on clips alone"),
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
    # kwsnb's additions (kwsnb.train.distribute): more than one device.
    "distribute": (str, "none", "none, mirrored (all local GPUs; else the --cpu_devices), tpu "
                                "(TPUStrategy, e.g. Colab) or multiworker (TF_CONFIG); "
                                "--batch_size stays the global batch"),
    "cpu_devices": (int, 0, "split the CPU into this many logical devices before TensorFlow "
                            "starts (--distribute mirrored without a GPU: tests, no speed-up)"),
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
    "use_spec_augment": (int, 0, "1: SpecAugment masks on the training examples' MFCCs "
                                 "(never on validation, inference or exports)"),
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

    argv = [str(arg) for arg in argv]  # numbers from a notebook parameter or a sweep's -p
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


def load_flags(train_dir: str | Path) -> dict[str, Any]:
    path = Path(train_dir) / FLAGS_FILE
    if not path.is_file():
        raise TrainError(f"{path} not found: {train_dir} is not a kwsnb train_dir "
                         "(train one with `python -m kwsnb.train --train_dir ...`)")
    try:
        flags = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TrainError(f"{path} cannot be read ({error}): it says what the weights beside it "
                         "were trained with; restore it from a copy, or train into another "
                         "--train_dir") from None
    if not isinstance(flags, dict) or "model_name" not in flags:
        raise TrainError(f"{path} is not a kwsnb flags file (no model_name): restore it from a "
                         "copy, or train into another --train_dir")
    return flags


def resolved_model_flags(flags: dict[str, Any]) -> dict[str, Any]:
    """Architecture flags with the command line's feature flags applied, and its clip format
    (--sample_rate, --clip_duration_ms: the data's clips and the model's input must agree)."""
    model_flags = dict(flags.get("model_flags", {}))
    for name in (*_FEATURE_FLAGS, "sample_rate", "clip_duration_ms"):
        if flags.get(name) is not None:
            model_flags[name] = flags[name]
    return model_flags


def expected_labels(flags: dict[str, Any]) -> list[str]:
    """The label list a data set read with these flags has (see kwsnb.data.SpeechCommands)."""
    from kwsnb import data

    words = [w.strip().lower() for w in str(flags["wanted_words"]).split(",") if w.strip()]
    specials = flags["silence_percentage"] > 0 or flags["unknown_percentage"] > 0
    return ([data.SILENCE_LABEL, data.UNKNOWN_WORD_LABEL] if specials else []) + words


def evaluation_flags(flags: dict[str, Any]) -> dict[str, Any]:
    """``--train 0``: the saved flags of ``--train_dir``, checked against the command line's
    model and labels; the command line's --train_dir, --test_dir, --test_exclude, --stream_clips
    and --latency_runs apply."""
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
    # The folder named on the command line (flags.json's may be relative to another folder).
    evaluation = ("train_dir", "test_dir", "test_exclude", "stream_clips", "latency_runs")
    return {**saved, **{key: flags.get(key) for key in evaluation}}


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


def validation_interval(total_steps: int, requested: int) -> int:
    """Keras epochs are equal-length, so validation runs every ``requested`` steps rounded down
    to a divisor of the total: the run then ends exactly at the seed's step count."""
    interval = min(requested, total_steps)
    while total_steps % interval:
        interval -= 1
    return interval
