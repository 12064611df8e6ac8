"""benchmarks/sc_lite10.py's recipe: SC-lite-9's flags with go as a keyword, its presets, and the
refusal of a models folder trained with another recipe (no training here)."""
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


def test_sc_lite10_is_sc_lite9_with_go():
    assert seed.SC_LITE10_WORDS.split(",") == [*seed.SC_LITE9_WORDS.split(","), "go"]
    assert seed.SC_LITE10_TEST_EXCLUDE == "on,off"
    nine = dict(zip(seed.SC_LITE9_FLAGS[::2], seed.SC_LITE9_FLAGS[1::2]))
    ten = dict(zip(seed.SC_LITE10_FLAGS[::2], seed.SC_LITE10_FLAGS[1::2]))
    assert ten == {**nine, "--wanted_words": seed.SC_LITE10_WORDS}


def test_presets():
    baseline, default = _flags_of("baseline"), _flags_of("default")
    assert baseline["stream_window_percentage"] == 0 and baseline["unknown_percentage"] == 10
    assert default["stream_window_percentage"] > 0  # the streaming recipe
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
