"""benchmarks/sc_lite9.py's recipe presets: their flags, and the refusal of a models folder
trained with another recipe (no training here)."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import sc_lite9  # noqa: E402
from kwsnb.models import seed  # noqa: E402
from kwsnb.train.flags import parse_command_line  # noqa: E402
from kwsnb.train.loop import TrainError  # noqa: E402


def _flags_of(preset, train_root="models", **overrides):
    steps, rates, recipe = sc_lite9.preset_recipe(preset)
    flags = parse_command_line(seed.seed_command("svdf", "data", str(train_root), steps=steps,
                                                 learning_rates=rates, extra=recipe))
    flags.update(overrides)
    return json.loads(json.dumps(flags))  # as flags.json stores them


def test_default_preset_is_the_committed_recipe():
    steps, rates, recipe = sc_lite9.preset_recipe("default")
    assert (steps, rates) == ("6000,2000", sc_lite9.LEARNING_RATES)
    assert recipe == [*sc_lite9.RECIPE, "--unknown_with_replacement", "1"]
    for name in ("svdf", "tc_resnet"):
        committed = json.loads((sc_lite9.REPO / "models" / name / "flags.json").read_text())
        assert sc_lite9._recipe_mismatch(committed, steps, rates, recipe) == []
        assert committed["unknown_with_replacement"] == 1


def test_short_and_long_presets():
    """short: the 4,000-step recipe of the models before finding 9; long: finding 8's 8,000
    steps with each unknown-word clip once. Same learning rates and noise flags as default."""
    short, long, default = _flags_of("short"), _flags_of("long"), _flags_of("default")
    assert short["how_many_training_steps"] == "3000,1000"
    assert long["how_many_training_steps"] == "6000,2000"
    assert short["learning_rate"] == long["learning_rate"] == "0.001,0.0002"
    assert long == _flags_of("short", how_many_training_steps="6000,2000")
    assert default == {**long, "unknown_with_replacement": 1}
    with pytest.raises(ValueError):
        sc_lite9.preset_recipe("nope")


def test_recipe_mismatch():
    default, long = sc_lite9.preset_recipe("default"), sc_lite9.preset_recipe("long")
    assert sc_lite9._recipe_mismatch(_flags_of("long"), *long) == []
    wrong = sc_lite9._recipe_mismatch(_flags_of("short"), *long)
    assert [w.split("=")[0] for w in wrong] == ["how_many_training_steps"]
    assert [w.split("=")[0] for w in sc_lite9._recipe_mismatch(_flags_of("long"), *default)] \
        == ["unknown_with_replacement"]
    # flags no preset sets must keep their defaults
    tts = _flags_of("default", extra_unknown_percentage=30.0, use_spec_augment=1)
    assert {w.split("=")[0] for w in sc_lite9._recipe_mismatch(tts, *default)} == {
        "extra_unknown_percentage", "use_spec_augment"}
    # a flags.json older than --extra_unknown_percentage had its default, 0
    old = _flags_of("default")
    del old["extra_unknown_percentage"]  # (and older than --unknown_with_replacement: 0)
    assert sc_lite9._recipe_mismatch(old, *default) == []


def test_a_models_folder_of_another_recipe_is_refused(tmp_path):
    (tmp_path / "svdf").mkdir()
    (tmp_path / "svdf" / "flags.json").write_text(json.dumps(_flags_of("short", tmp_path)))
    with pytest.raises(TrainError, match="another recipe"):
        sc_lite9.train_architecture("svdf", tmp_path, tmp_path, *sc_lite9.preset_recipe("long"))
