"""What a notebook calls between its prose: ``settings`` (the seed's full recipe or the quick
preset), ``prepare_data`` (the data source parameter to a data folder), ``train`` (trains, or
reuses a finished run) and ``test_clips`` (the clips a train_dir is scored on)."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Sequence

# The seed's ten keywords plus six other words for _unknown_: the quick synthetic set.
QUICK_SYNTHETIC_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
                         "bed", "bird", "cat", "dog", "happy", "house")
SYNTHETIC_SOURCE = "synthetic"
SPEECH_COMMANDS_SOURCES = {"speech_commands": 2, "speech_commands_v2": 2,
                           "speech_commands_v1": 1}


# ---------------------------------------------------------------------------------------------
# Settings: the seed's full recipe, or the quick preset
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Settings:
    """What a notebook run does beyond the seed's command line.

    ``steps`` / ``learning_rates``: None keeps the seed's (80,000 steps in four stages).
    ``extra_flags``: training flags added before the model name. ``formats``: the formats
    exported and measured (None: all). ``stream_clips`` / ``latency_runs``: evaluation effort
    (``kwsnb.evaluate.evaluate_train_dir``). ``stream_format``: the streaming model run over the
    long recording, of ``recording_seconds``; its operating point is chosen on a recording of
    validation words of ``validation_seconds``. ``synthetic_speakers`` / ``synthetic_words``: the
    offline TTS set made when the data source is ``"synthetic"`` (None: all 35 words).
    """

    quick: bool
    steps: str | None
    learning_rates: str | None
    extra_flags: tuple[str, ...]
    formats: tuple[str, ...] | None
    stream_clips: int | None
    latency_runs: int
    stream_format: str
    recording_seconds: float
    validation_seconds: float
    synthetic_speakers: int
    synthetic_words: tuple[str, ...] | None
    recipe: str = "seed"

    def training_flags(self, wanted_words: str | None = None,
                       distribute: str | None = None) -> list[str]:
        """Flags for ``kwsnb.models.seed.seed_command(..., extra=...)``; ``distribute`` other than
        "none" adds ``--distribute`` (``kwsnb.train.distribute``)."""
        flags = list(self.extra_flags)
        if wanted_words:
            flags += ["--wanted_words", str(wanted_words)]
        if distribute and str(distribute) != "none":
            flags += ["--distribute", str(distribute)]
        return flags

    def _repr_markdown_(self) -> str:
        shown = " ".join(flag or "''" for flag in self.extra_flags)
        recipe = ("" if self.recipe == "seed" else
                  f" Recipe `{self.recipe}`: the seed's command line followed by `{shown}`.")
        if not self.quick:
            steps = self.steps or "the seed's 20000,20000,20000,20000"
            return (f"**Full recipe**: {steps} training steps, every TFLite format, "
                    f"{self.recording_seconds / 60:g} min long recording.{recipe}")
        return (f"**Quick preset** (a smoke run, not a result): {self.steps} training steps "
                f"({' '.join(self.extra_flags)}), formats {', '.join(self.formats or ())}, "
                f"{self.stream_clips} clips per stream format, {self.latency_runs} latency runs, "
                f"{self.recording_seconds:g} s long recording.")


FULL = Settings(quick=False, steps=None, learning_rates=None, extra_flags=(), formats=None,
                stream_clips=1000, latency_runs=200,
                stream_format="tflite_stream_external_int8", recording_seconds=300.0,
                validation_seconds=1200.0, synthetic_speakers=300, synthetic_words=None)
# A few minutes per notebook on 2 CPU cores: enough to run every step, not to learn much.
QUICK = Settings(quick=True, steps="60,60", learning_rates="0.001,0.0005",
                 extra_flags=("--eval_step_interval", "60", "--batch_size", "50"),
                 formats=("keras", "tflite_float", "tflite_dynamic", "tflite_int8",
                          "tflite_stream_external_float"),
                 stream_clips=20, latency_runs=20, stream_format="tflite_stream_external_float",
                 recording_seconds=60.0, validation_seconds=300.0, synthetic_speakers=12,
                 synthetic_words=QUICK_SYNTHETIC_WORDS)


RECIPES = ("seed", "sc_lite10")


def settings(quick: bool = False, training_steps: str | None = None,
             learning_rates: str | None = None, recipe: str = "seed") -> Settings:
    """The full recipe or the quick preset, with the notebook's steps / learning rates.

    ``recipe``: ``"seed"`` (the seed's flags) or ``"sc_lite10"`` (docs/results_sc_lite10.md's:
    ``kwsnb.models.seed.sc_lite10_recipe()``'s flags, streaming-aware training included, and,
    unless quick, its steps and learning rates).
    Learning rates left out follow the steps: the preset's (or the seed's) first rates, one per
    stage, the last repeated when there are more stages.
    """
    from kwsnb.models import seed

    if recipe not in RECIPES:
        raise ValueError(f"recipe = {recipe!r}: use one of {', '.join(map(repr, RECIPES))}")
    chosen = QUICK if quick else FULL
    if recipe == "sc_lite10":
        steps, rates, flags = seed.sc_lite10_recipe()
        chosen = dataclasses.replace(
            chosen, recipe=recipe, extra_flags=(*flags, *chosen.extra_flags),
            steps=chosen.steps if quick else steps,
            learning_rates=chosen.learning_rates if quick else rates)
    if training_steps is None and learning_rates is None:
        return chosen
    steps = training_steps or chosen.steps
    if learning_rates is None and steps is not None:
        stages = len([s for s in str(steps).split(",") if s.strip()])
        known = (chosen.learning_rates or _seed_learning_rates(seed)).split(",")
        learning_rates = ",".join((known + known[-1:] * stages)[:stages])
    return dataclasses.replace(chosen, steps=steps, learning_rates=learning_rates)


def _seed_learning_rates(seed_module) -> str:
    argv = seed_module.seed_command("svdf", "DATA", "MODELS")  # every 30k recipe has the same
    return argv[argv.index("--learning_rate") + 1]


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------

def prepare_data(source: str, data_dir, quick: bool = False, progress: bool = True) -> Path:
    """Makes the notebook's data available and returns its folder.

    ``source``: ``"speech_commands"`` (official V2 download, also ``"speech_commands_v1"``),
    ``"synthetic"`` (the offline TTS set, made in ``data_dir``; ``quick``: 16 words x 12
    speakers), or a URL, a local ``.tar.gz``/``.zip`` archive or an extracted folder (used in
    place). A ``data_dir`` that already holds a Speech Commands layout is used as it is.
    """
    from data_setup import speech_commands, synthetic

    data_dir = Path(data_dir).expanduser()
    preset = QUICK if quick else FULL
    if speech_commands.check_layout(data_dir).ok:
        folder = data_dir
    elif source == SYNTHETIC_SOURCE:
        words = preset.synthetic_words or synthetic.SPEECH_COMMANDS_V2_WORDS
        folder = synthetic.synthesize(data_dir, words=words,
                                      num_speakers=preset.synthetic_speakers, seed=0,
                                      progress=progress)
    elif source in SPEECH_COMMANDS_SOURCES:
        folder = speech_commands.prepare(data_dir, version=SPEECH_COMMANDS_SOURCES[source],
                                         progress=progress)
    elif source:
        folder = speech_commands.prepare(data_dir, source=source, progress=progress)
    else:
        raise ValueError("data_source is empty: give 'speech_commands', 'synthetic', a URL, an "
                         "archive or a folder")
    summary = speech_commands.require_layout(folder)
    if progress:
        print(f"data in {folder}: {summary.describe()}")
        if "google.colab" in sys.modules and not str(Path(folder).resolve()).startswith(
                "/content/drive"):
            print(f"Note: Colab deletes {folder} (and models_dir) when the runtime is "
                  "disconnected or reset. To keep them, mount Google Drive "
                  "(from google.colab import drive; drive.mount('/content/drive')) and set "
                  "data_dir and models_dir below /content/drive/MyDrive.")
    return Path(folder)


def train(argv: Sequence[str]) -> dict:
    """Trains the seed's command line ``argv`` (``kwsnb.models.seed.seed_command``), or, when its
    train_dir already holds a finished run (``kwsnb.train.finished_run``), uses that run as it
    is: a notebook pointed at a trained model (e.g. the repository's ``models/``) shows its
    results without training again. Returns the run's flags."""
    from kwsnb import train as training

    requested = training.parse_command_line(list(argv))
    finished = training.finished_run(requested["train_dir"])
    if finished is None:
        return training.train(requested)
    if finished["model_name"] != requested["model_name"]:
        raise training.TrainError(f"{requested['train_dir']} holds a finished "
                                  f"{finished['model_name']} run, not {requested['model_name']}: "
                                  "choose another models_dir")
    steps = finished["how_many_training_steps"]
    minutes = (finished.get("training_seconds") or 0) / 60
    note = ("" if steps == requested["how_many_training_steps"] else
            f" (this notebook's settings ask for {requested['how_many_training_steps']})")
    print(f"{requested['train_dir']} holds a finished run: {steps} steps{note}, "
          f"{minutes:.1f} min of training. Training skipped; choose another models_dir to "
          "train again.")
    return finished


def test_clips(flags: dict, test_dir=None, exclude: str | Sequence[str] = ()):
    """The clips a train_dir is scored on, as ``kwsnb.evaluate`` picks them: a test folder in
    the official layout when given, else the data set's testing split (its validation split
    when the testing split is empty). Returns (audio [n, samples], labels [n], description)."""
    from kwsnb import data

    labels = list(flags["labels"])
    if test_dir:
        if isinstance(exclude, str):
            exclude = [w for w in exclude.split(",") if w.strip()]
        audio, targets = data.read_test_folder(test_dir, labels, exclude, progress=False)
        return audio, targets, f"{Path(test_dir).name} ({len(targets):,} clips)"
    dataset = data.SpeechCommands.from_flags(flags, progress=False)
    split = "testing" if dataset.split_sizes["testing"] else "validation"
    audio, targets = dataset.arrays(split)
    return audio, targets, f"{dataset.data_dir.name} {split} split ({len(targets):,} clips)"


def operating_point(flags: dict, run: Settings, progress: bool = False) -> dict:
    """The detector's smoothing and threshold for ``flags``' train_dir: the ones stored with the
    model (``kwsnb.evaluate.operating_point.stored``), else chosen for ``run.stream_format`` on a
    ``run.validation_seconds`` recording of the data set's validation speakers (the fewest
    misses at <= 10 false accepts per hour) and stored in ``train_dir/detection.json``."""
    from kwsnb import data
    from kwsnb.evaluate import operating_point as chosen

    train_dir = Path(flags["train_dir"])
    point = chosen.stored(train_dir)
    if point is None:
        dataset = data.SpeechCommands.from_flags(flags, progress=False)
        audio, labels = dataset.arrays("validation")
        point = chosen.store(train_dir, chosen.tune(
            train_dir / run.stream_format, audio, labels, dataset.labels,
            noise=dataset.data_dir / data.BACKGROUND_NOISE_DIR_NAME,
            duration_s=run.validation_seconds, progress=progress), format=run.stream_format)
    return point
