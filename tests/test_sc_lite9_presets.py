"""benchmarks/sc_lite9.py's recipe presets: their flags, and the refusal of a models folder
trained with another recipe (no training here)."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import sc_lite9  # noqa: E402
from kwsnb import seed  # noqa: E402
from kwsnb.train.flags import parse_command_line  # noqa: E402
from kwsnb.train.loop import TrainError  # noqa: E402


def _flags_of(preset, train_root="models", **overrides):
    steps, rates, recipe = sc_lite9.preset_recipe(preset)
    flags = parse_command_line(seed.seed_command("svdf", "data", str(train_root), steps=steps,
                                                 learning_rates=rates, extra=recipe))
    flags.update(overrides)
    return json.loads(json.dumps(flags))  # as flags.json stores them


def test_default_preset_is_the_committed_recipe():
    assert sc_lite9.preset_recipe("default") == (sc_lite9.STEPS, sc_lite9.LEARNING_RATES,
                                                  sc_lite9.RECIPE)
    committed = json.loads((sc_lite9.REPO / "models" / "svdf" / "flags.json").read_text())
    assert sc_lite9._recipe_mismatch(committed, *sc_lite9.preset_recipe("default")) == []


def test_long_preset_doubles_the_schedule_with_the_same_learning_rates():
    flags = _flags_of("long")
    assert flags["how_many_training_steps"] == "6000,2000"
    assert flags["learning_rate"] == "0.001,0.0002"
    assert flags == _flags_of("default", how_many_training_steps="6000,2000")
    with pytest.raises(ValueError):
        sc_lite9.preset_recipe("nope")


def test_recipe_mismatch():
    default, long = sc_lite9.preset_recipe("default"), sc_lite9.preset_recipe("long")
    assert sc_lite9._recipe_mismatch(_flags_of("long"), *long) == []
    wrong = sc_lite9._recipe_mismatch(_flags_of("default"), *long)
    assert [w.split("=")[0] for w in wrong] == ["how_many_training_steps"]
    # flags no preset sets must keep their defaults
    tts = _flags_of("default", extra_unknown_percentage=30.0, use_spec_augment=1)
    assert {w.split("=")[0] for w in sc_lite9._recipe_mismatch(tts, *default)} == {
        "extra_unknown_percentage", "use_spec_augment"}
    # a flags.json older than --extra_unknown_percentage had its default, 0
    old = _flags_of("default")
    del old["extra_unknown_percentage"]
    assert sc_lite9._recipe_mismatch(old, *default) == []


def test_a_models_folder_of_another_recipe_is_refused(tmp_path):
    (tmp_path / "svdf").mkdir()
    (tmp_path / "svdf" / "flags.json").write_text(json.dumps(_flags_of("default", tmp_path)))
    with pytest.raises(TrainError, match="another recipe"):
        sc_lite9.train_architecture("svdf", tmp_path, tmp_path, *sc_lite9.preset_recipe("long"))
