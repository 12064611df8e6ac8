"""The notebooks: rendered from their templates, the same story for all eight architectures, and
run end to end with papermill in the quick preset (what they produce is checked, not only that
they finish).

Fast tests check the rendering (committed notebooks are current, parameters, the setup cell,
the architecture-specific prose) and the helpers. Slow tests run every notebook on the offline
TTS set (``synthetic_dir``); real-data tests run the data notebook, one architecture and the
comparison on ../shared/data (SC-lite-10: eight keywords, the test folder without on/off).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
import soundfile

from kwsnb import notebooks

from kwsnb.notebooks import render
from kwsnb.models import seed
from kwsnb.tflite import export

REPO = Path(__file__).resolve().parents[1]
ARCHITECTURES = render.architectures()
# One cell may take long (the full V2 download is not run here); a hang fails instead of
# stalling CI.
CELL_TIMEOUT_S = 600
SC_LITE10_WORDS = "yes,no,up,down,left,right,stop,go"


def rendered(name: str) -> nbformat.NotebookNode:
    return render.render(name)


def code_cells(notebook) -> list:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def parameters(notebook) -> dict:
    (cell,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    values: dict = {}
    exec(cell.source, {}, values)  # plain assignments of literals
    return values


# --- rendering -------------------------------------------------------------------------------

def test_committed_notebooks_are_current():
    stale = render.stale_notebooks()
    assert not stale, f"run `python -m kwsnb.notebooks`: {stale} differ from the templates"


def test_every_notebook_is_listed_once_in_reading_order():
    names = render.notebook_names()
    assert names[0] == "00_data_setup" and names[-1] == "compare_30k"
    assert names[1:-1] == list(ARCHITECTURES) and len(ARCHITECTURES) == 8
    assert sorted(p.stem for p in (REPO / "notebooks").glob("*.ipynb")) == sorted(names)


@pytest.mark.parametrize("name", render.notebook_names())
def test_setup_cell_installs_kwsnb_before_anything_else(name):
    notebook = rendered(name)
    first_code = code_cells(notebook)[0]
    assert render.INSTALL_SPEC in first_code.source
    assert 'find_spec("kwsnb") is None' in first_code.source
    assert not any("kwsnb" in c.source for c in notebook.cells[:notebook.cells.index(first_code)]
                   if c.cell_type == "code")
    assert render.colab_badge(f"{name}.ipynb") in notebook.cells[0].source


@pytest.mark.parametrize("name", render.notebook_names())
def test_parameters_cell_defaults_are_the_seed_recipe(name):
    values = parameters(rendered(name))
    if name == "compare_30k":
        assert values == {"models_dir": "models", "report_name": "report.json"}
        return
    assert values["data_source"] == "speech_commands"
    assert values["data_dir"] == "data/speech_commands_v2"
    assert values["quick"] is False
    if name == "00_data_setup":
        return
    assert values["training_steps"] is None and values["learning_rates"] is None
    assert values["wanted_words"] is None and values["test_dir"] is None
    assert values["distribute"] == "none" and values["recipe"] == "seed"
    run = notebooks.settings(values["quick"], values["training_steps"], values["learning_rates"],
                             values["recipe"])
    assert run == notebooks.FULL and run.formats is None
    argv = seed.seed_command(name, "D", values["models_dir"], steps=run.steps,
                             learning_rates=run.learning_rates, extra=run.training_flags())
    assert argv == seed.seed_command(name, "D", values["models_dir"])  # the seed's, unchanged
    assert "20000,20000,20000,20000" in argv


def test_architecture_notebooks_share_one_story():
    """Same cells, same code; only the model name and the prose differ."""
    reference = rendered(ARCHITECTURES[0])
    for name in ARCHITECTURES[1:]:
        notebook = rendered(name)
        assert [c.cell_type for c in notebook.cells] == [c.cell_type for c in reference.cells]
        for mine, theirs in zip(code_cells(notebook), code_cells(reference)):
            assert mine.source.replace(name, "NAME") == \
                theirs.source.replace(ARCHITECTURES[0], "NAME")


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_architecture_prose_comes_from_the_model_module(name):
    prose = render.architecture_prose(name)
    text = "\n".join(c.source for c in rendered(name).cells if c.cell_type == "markdown")
    assert prose.changes and prose.changes in text
    assert prose.structure.split("\n")[0] in text
    assert prose.streaming.split("\n")[0] in text
    assert not re.search(r"(?<!`)``(?!`)", text)  # reStructuredText literals became Markdown
    figures = seed.PUBLISHED[name]
    assert f"{figures['float_accuracy']}%" in text and f"{figures['quant_size_kb']} KB" in text


def test_inception_notebook_says_which_flags_the_seed_command_lost():
    text = "\n".join(c.source for c in rendered("inception").cells if c.cell_type == "markdown")
    for flag in ("--cnn_strides '2,2,1'", "--dropout 0.0", "--bn_scale 0"):
        assert flag in text
    assert "line continuation is missing" in text and "kwsnb uses the meant values" in text
    others = "\n".join(c.source for c in rendered("tc_resnet").cells)
    assert "line continuation" not in others


def test_rst_literal_blocks_become_fenced_code():
    text = "Structure at its flags::\n\n    conv -> BN\n      -> ReLU\n\nThen ``x`` and more."
    assert render.rst_to_markdown(text) == (
        "Structure at its flags:\n\n```text\nconv -> BN\n  -> ReLU\n```\n\nThen `x` and more.")


def test_templates_parse_cells_and_tags():
    cells = render.parse_template(
        "# header comment\n\n# %% [markdown]\n# # Title\n#\n# text\n\n"
        '# %% tags=["parameters"]\nquick = False\n\n# %%\nprint({{name}})\n')
    assert [(c.kind, c.source, c.tags) for c in cells] == [
        ("markdown", "# Title\n\ntext", ()), ("code", "quick = False", ("parameters",)),
        ("code", "print({{name}})", ())]
    with pytest.raises(KeyError, match="placeholder {{name}}"):
        render.fill(cells[2].source, {}, "template.py")


def test_badge_lines_link_every_notebook_on_colab():
    lines = render.badge_lines()
    assert len(lines) == 10
    readme = (REPO / "README.md").read_text()
    assert all(line in readme for line in lines), "README's notebook list lacks a badge line"
    for line, name in zip(lines, render.notebook_names()):
        assert f"colab.research.google.com/github/{render.REPO}/blob/" in line
        assert f"notebooks/{name}.ipynb" in line


# --- helpers the notebooks call --------------------------------------------------------------

def test_settings_quick_preset_and_custom_steps():
    assert notebooks.settings(True) == notebooks.QUICK
    custom = notebooks.settings(False, "100,100,100")
    assert custom.steps == "100,100,100" and custom.learning_rates == "0.001,0.0005,0.0001"
    assert notebooks.settings(True, "30,30").learning_rates == "0.001,0.0005"
    assert notebooks.QUICK.stream_format in notebooks.QUICK.formats
    assert "--wanted_words" in notebooks.QUICK.training_flags("yes,no")
    assert "--distribute" not in notebooks.QUICK.training_flags(None, "none")
    assert notebooks.FULL.training_flags(None, "tpu") == ["--distribute", "tpu"]


def test_settings_sc_lite10_recipe_is_the_committed_models_recipe():
    """recipe = "sc_lite10": the notebook's command line is benchmarks/sc_lite10.py's (default
    preset), which trained the repository's models/; quick keeps its few steps."""
    from kwsnb.train.flags import parse_command_line

    run = notebooks.settings(False, recipe="sc_lite10")
    argv = seed.seed_command("svdf", "D", "M", steps=run.steps,
                             learning_rates=run.learning_rates, extra=run.training_flags())
    steps, rates, flags = seed.sc_lite10_recipe()
    assert argv == seed.seed_command("svdf", "D", "M", steps=steps, learning_rates=rates,
                                     extra=flags)
    parsed = parse_command_line(argv)
    committed = json.loads((REPO / "models" / "svdf" / "flags.json").read_text())
    for name in ("how_many_training_steps", "learning_rate", "wanted_words", "background_rms",
                 "unknown_with_replacement", "normalize_features", "unknown_percentage",
                 "stream_window_percentage", "background_volume", "tts_unknown_words",
                 "extra_unknown_percentage"):
        assert parsed[name] == committed[name], name
    assert "Recipe `sc_lite10`" in run._repr_markdown_() and "--data_url ''" in \
        run._repr_markdown_()
    quick = notebooks.settings(True, recipe="sc_lite10")
    assert quick.steps == notebooks.QUICK.steps
    assert quick.extra_flags[-4:] == notebooks.QUICK.extra_flags  # the quick flags win
    with pytest.raises(ValueError, match="recipe = 'sc_lite'"):
        notebooks.settings(False, recipe="sc_lite")


def test_prepare_data_uses_an_existing_folder(synthetic_dir, tmp_path):
    assert notebooks.prepare_data("speech_commands", synthetic_dir, progress=False) == \
        synthetic_dir  # already a Speech Commands layout: no download
    with pytest.raises(ValueError, match="data_source is empty"):
        notebooks.prepare_data("", tmp_path / "nothing", progress=False)


def test_a_finished_run_is_used_as_it_is(tmp_path, capsys):
    """The repository's tc_resnet run: notebooks.train returns its flags without reading data
    or touching its weights, whatever steps the notebook asks for; a run whose log stops
    short (killed) is not finished; another model in the folder is an error."""
    import shutil

    from kwsnb import train as training

    models_dir = tmp_path / "models"
    shutil.copytree(REPO / "models" / "tc_resnet", models_dir / "tc_resnet")
    weights = models_dir / "tc_resnet" / training.BEST_WEIGHTS
    before = weights.read_bytes()
    argv = seed.seed_command("tc_resnet", str(tmp_path / "no_data_here"), str(models_dir))
    flags = notebooks.train(argv)
    assert flags["how_many_training_steps"] == "6000,2000" and flags["labels"][2] == "yes"
    said = capsys.readouterr().out
    assert "holds a finished run: 6000,2000 steps (this notebook's settings ask for " \
           "20000,20000,20000,20000)" in said and "Training skipped" in said
    assert weights.read_bytes() == before

    shutil.copytree(models_dir / "tc_resnet", models_dir / "svdf")
    with pytest.raises(training.TrainError, match="finished tc_resnet run, not svdf"):
        notebooks.train(seed.seed_command("svdf", str(tmp_path), str(models_dir)))

    log = models_dir / "tc_resnet" / training.TRAINING_LOG
    log.write_text("\n".join(log.read_text().splitlines()[:-1]) + "\n")  # last epoch lost
    assert training.finished_run(models_dir / "tc_resnet") is None
    assert training.finished_run(tmp_path / "empty") is None


def test_uploads_become_their_loudest_second(synthetic_dir, tmp_path):
    from kwsnb.notebooks import widgets
    from kwsnb.data import load_clip

    clip = load_clip(sorted((synthetic_dir / "yes").iterdir())[0])
    long = np.concatenate([np.zeros(24000, np.float32), clip, np.zeros(8000, np.float32)])
    path = tmp_path / "long.flac"
    soundfile.write(path, long, 16000)
    loaded = widgets.read_upload("mine.flac", path.read_bytes())
    assert loaded.shape == (16000,)
    assert np.sum(loaded ** 2) >= 0.99 * np.sum(clip ** 2)  # all of the word is in it
    with pytest.raises(ValueError, match="notes.txt"):
        widgets.read_upload("notes.txt", b"not audio at all")


# --- running the notebooks (papermill, quick preset) ------------------------------------------

def execute(name: str, out_dir: Path, monkeypatch, **parameters) -> nbformat.NotebookNode:
    import papermill

    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend draws PNGs
    output = out_dir / f"{name}.out.ipynb"
    papermill.execute_notebook(str(REPO / "notebooks" / f"{name}.ipynb"), str(output),
                               parameters=parameters, cwd=str(out_dir), kernel_name="python3",
                               progress_bar=False, execution_timeout=CELL_TIMEOUT_S)
    return nbformat.read(output, as_version=4)


def outputs(notebook, kind: str) -> list:
    """Every output of MIME type ``kind`` (or stream text for "stream")."""
    found = []
    for cell in code_cells(notebook):
        for output in cell.get("outputs", []):
            if kind == "stream" and output.output_type == "stream":
                found.append(output.text)
            elif kind in output.get("data", {}):
                found.append(output.data[kind])
    return found


def assert_no_errors(notebook):
    errors = [o for c in code_cells(notebook) for o in c.get("outputs", [])
              if o.output_type == "error"]
    assert not errors, errors


@pytest.fixture(scope="session")
def quick_models_dir(tmp_path_factory) -> Path:
    """Where the architecture notebooks train (shared with the comparison notebook)."""
    return tmp_path_factory.mktemp("notebook_models")


@pytest.mark.slow
def test_data_notebook_makes_and_shows_a_synthetic_set(tmp_path, monkeypatch):
    data_dir = tmp_path / "synthetic"
    notebook = execute("00_data_setup", tmp_path, monkeypatch, data_source="synthetic",
                       data_dir=str(data_dir), quick=True)
    assert_no_errors(notebook)
    marker = json.loads((data_dir / ".complete").read_text())
    assert marker["num_speakers"] == notebooks.QUICK.synthetic_speakers
    assert tuple(marker["words"]) == notebooks.QUICK_SYNTHETIC_WORDS
    # label counts x2, five clips, browser, noise levels, augmentation
    assert len(outputs(notebook, "image/png")) >= 6
    players = "".join(outputs(notebook, "text/html"))
    assert players.count("<audio") >= 10 + 1 + 7 + 4  # keywords, browser, noises, augmentation


def check_architecture_run(notebook, train_dir: Path, name: str, run: notebooks.Settings,
                           report_name: str = "report.json"):
    from kwsnb import models

    assert_no_errors(notebook)
    report = json.loads((train_dir / report_name).read_text())
    assert report["model"] == name
    # SEED_PARAMS counts the seed's 12 labels; the logits layer follows the run's label count.
    expected = models.count_params(models.build(name, label_count=len(report["labels"])))
    assert report["params"] == expected
    if len(report["labels"]) == 12:
        assert expected == models.architecture(name).SEED_PARAMS
    assert list(report["formats"]) == list(run.formats)
    for fmt, entry in report["formats"].items():
        assert "error" not in entry, (fmt, entry)
        assert 0.0 <= entry["accuracy"] <= 1.0 and entry["size_bytes"] > 0
        if fmt != "keras":
            assert entry["latency_ms"] > 0 and (train_dir / fmt / "model.tflite").is_file()
    formats = report["formats"]
    assert formats["tflite_int8"]["size_bytes"] < formats["tflite_float"]["size_bytes"]
    stream = formats[run.stream_format]
    assert stream["clips"] == min(run.stream_clips, report["test_set"]["clips"])
    flags = json.loads((train_dir / "flags.json").read_text())
    assert flags["how_many_training_steps"] == run.steps
    log = (train_dir / "training_log.csv").read_text().strip().splitlines()
    assert len(log) == 1 + 2  # header + one validation per 60-step stage
    # The notebook's own measurements: stream vs non-stream, and the long recording.
    text = "".join(outputs(notebook, "stream"))
    difference = float(re.search(r"streaming and non-stream logits: (\S+)", text).group(1))
    assert difference < 1e-4
    detection = "".join(outputs(notebook, "text/markdown"))
    found = re.search(rf"{run.stream_format} over 1\.0 min, smoothing ([\d.]+) ms and threshold "
                      rf"([\d.]+): \d+ of \d+ keywords found", detection)
    assert found, detection
    # The operating point was chosen on validation speech and stored with these weights.
    stored = json.loads((train_dir / "detection.json").read_text())
    point = stored["operating_point"]
    assert (f"{point['smoothing_ms']:g}", f"{point['threshold']:g}") == found.groups()
    assert point["recording"]["duration_s"] == run.validation_seconds
    assert point["recording"]["words"] > 50
    assert stored["weights_sha256"] == export.weights_digest(train_dir / "best_weights.weights.h5")
    # parameters, curves, confusion, formats, streaming, timeline, trade-off, probabilities,
    # and the widget's first view
    assert len(outputs(notebook, "image/png")) >= 9


@pytest.mark.slow
@pytest.mark.parametrize("name", ARCHITECTURES)
def test_architecture_notebook_quick_run(name, synthetic_dir, quick_models_dir, tmp_path,
                                         monkeypatch):
    notebook = execute(name, tmp_path, monkeypatch, data_source="synthetic",
                       data_dir=str(synthetic_dir), models_dir=str(quick_models_dir), quick=True)
    check_architecture_run(notebook, quick_models_dir / name, name, notebooks.QUICK)


@pytest.mark.slow
def test_compare_notebook_reads_every_report(synthetic_dir, quick_models_dir, tmp_path,
                                             monkeypatch):
    trained = sorted(p.parent.name for p in quick_models_dir.glob("*/report.json"))
    if not trained:  # run on its own: train one model first
        execute("tc_resnet", tmp_path, monkeypatch, data_source="synthetic",
                data_dir=str(synthetic_dir), models_dir=str(quick_models_dir), quick=True)
        trained = ["tc_resnet"]
    notebook = execute("compare_30k", tmp_path, monkeypatch, models_dir=str(quick_models_dir))
    assert_no_errors(notebook)
    markdown = "\n".join(outputs(notebook, "text/markdown"))
    assert f"Found {len(trained)} report(s) under" in markdown
    for name in trained:
        published = seed.PUBLISHED[name]
        assert re.search(rf"\| {name} \| [\d,]+ \({published['params']:,}\)", markdown)
        assert f"({published['float_accuracy']:.1f})" in markdown
    assert seed.SOURCE in markdown
    assert len(outputs(notebook, "image/png")) == 2


# --- real Speech Commands audio (../shared/data) -----------------------------------------------

@pytest.mark.slow
@pytest.mark.real_data
def test_notebooks_on_real_speech(real_train_dir, real_test_dir, tmp_path, monkeypatch):
    """SC-lite-10: the data notebook on the real folder (used in place), tc_resnet trained on it
    in the quick preset and scored on the real test folder too, and the comparison of those
    test-folder reports."""
    notebook = execute("00_data_setup", tmp_path, monkeypatch, data_source=str(real_train_dir),
                       data_dir=str(real_train_dir), wanted_words=SC_LITE10_WORDS, quick=True)
    assert_no_errors(notebook)
    assert len(outputs(notebook, "image/png")) >= 6

    models_dir = tmp_path / "models"
    notebook = execute("tc_resnet", tmp_path, monkeypatch, data_source=str(real_train_dir),
                       data_dir=str(real_train_dir), models_dir=str(models_dir),
                       wanted_words=SC_LITE10_WORDS, test_dir=str(real_test_dir),
                       test_exclude="on,off", quick=True)
    test_report_name = f"report_{real_test_dir.name}.json"
    check_architecture_run(notebook, models_dir / "tc_resnet", "tc_resnet", notebooks.QUICK,
                           report_name=test_report_name)
    # One evaluation, on the test folder the notebook is about (not the training set's split).
    assert not (models_dir / "tc_resnet" / "report.json").exists()
    test_report = json.loads((models_dir / "tc_resnet" / test_report_name).read_text())
    assert test_report["test_set"]["exclude"] == ["on", "off"]
    assert test_report["test_set"]["clips"] > 1500
    assert test_report["labels"] == ["_silence_", "_unknown_", *SC_LITE10_WORDS.split(",")]

    notebook = execute("compare_30k", tmp_path, monkeypatch, models_dir=str(models_dir),
                       report_name=test_report_name)
    assert_no_errors(notebook)
    markdown = "\n".join(outputs(notebook, "text/markdown"))
    assert "Found 1 report(s) under" in markdown and real_test_dir.name in markdown
