"""benchmarks/sc_lite10.py's recipe: its flags and presets, the committed models trained with it,
and the refusal of a models folder trained with another recipe (no training here)."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import sc_lite10  # noqa: E402
from kwsnb.models import seed  # noqa: E402
from kwsnb.train.flags import parse_command_line  # noqa: E402
from kwsnb.train.loop import TrainError  # noqa: E402


def _flags_of(preset):
    steps, rates, recipe = sc_lite10.preset_recipe(preset)
    flags = parse_command_line(seed.seed_command("tc_resnet", "data", "models", steps=steps,
                                                 learning_rates=rates, extra=recipe))
    return json.loads(json.dumps(flags))  # as flags.json stores them


def test_sc_lite10_labels_and_recipe():
    assert seed.SC_LITE10_WORDS.split(",") == ["yes", "no", "up", "down", "left", "right",
                                               "stop", "go"]
    assert seed.SC_LITE10_TEST_EXCLUDE == "on,off"
    flags = _flags_of("default")
    # the noise levels, normalized features and streaming-aware training
    assert (flags["background_rms"], flags["silence_volume"], flags["eval_silence_noise"],
            flags["normalize_features"]) == (0.1, 1.0, 1, 1)
    assert (flags["stream_window_percentage"], flags["unknown_percentage"],
            flags["background_volume"], flags["unknown_with_replacement"]) == (25, 30, 0.3, 1)
    assert flags["how_many_training_steps"] == "6000,2000"
    # on and off (7-10 real clips each) spoken by offline TTS as _unknown_ examples
    assert (flags["tts_unknown_words"], flags["extra_unknown_percentage"]) == ("on,off", 7.0)
    assert _flags_of("baseline")["tts_unknown_words"] == ""


def test_the_committed_models_follow_the_default_recipe():
    steps, rates, recipe = sc_lite10.preset_recipe("default")
    for name in sc_lite10.models.ARCHITECTURES:
        committed = json.loads((sc_lite10.REPO / "models" / name / "flags.json").read_text())
        assert sc_lite10._recipe_mismatch(committed, steps, rates, recipe) == [], name
        assert committed["wanted_words"] == seed.SC_LITE10_WORDS


def test_presets():
    baseline, default, long = _flags_of("baseline"), _flags_of("default"), _flags_of("long")
    assert baseline["stream_window_percentage"] == 0 and baseline["unknown_percentage"] == 10
    assert default["stream_window_percentage"] > 0  # the streaming recipe
    assert {**long, "how_many_training_steps": "6000,2000"} == default
    for flags in (baseline, default):
        assert flags["wanted_words"] == seed.SC_LITE10_WORDS
    with pytest.raises(ValueError, match="unknown SC-lite-10 preset"):
        sc_lite10.preset_recipe("nope")


def test_a_models_folder_of_another_recipe_is_refused(tmp_path):
    steps, rates, recipe = sc_lite10.preset_recipe("default")
    (tmp_path / "tc_resnet").mkdir()
    (tmp_path / "tc_resnet" / "flags.json").write_text(json.dumps(_flags_of("baseline")))
    with pytest.raises(TrainError, match="stream_window_percentage"):
        sc_lite10.train_architecture("tc_resnet", tmp_path, tmp_path, steps, rates, recipe)
