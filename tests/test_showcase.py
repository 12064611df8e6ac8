"""The notebooks rendered with their results (docs/notebooks/, ``python -m kwsnb.notebooks.showcase``).

Fast tests read the committed renders: one per notebook, the same code as the source notebook
(so a template change without ``python -m kwsnb.notebooks.showcase`` fails here), real results in them
(pictures, the real test folder's scores, no error), and the figures the README shows. A real
data test renders one architecture again and checks that the committed model folder is left
as it was.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import nbformat
import pytest


from kwsnb.notebooks import render
from kwsnb.notebooks import showcase
from test_notebooks import outputs as _outputs  # every output of one MIME type

REPO = Path(__file__).resolve().parents[1]
RENDERED = REPO / "docs" / "notebooks"


def _code(notebook) -> list[str]:
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"
            and "injected-parameters" not in cell.metadata.get("tags", [])]


@pytest.mark.parametrize("name", render.notebook_names())
def test_each_notebook_is_rendered_with_its_results(name):
    path = RENDERED / f"{name}.ipynb"
    assert path.is_file(), f"{path} missing: run python -m kwsnb.notebooks.showcase"
    rendered = nbformat.read(path, as_version=4)
    source = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
    assert _code(rendered) == _code(source), (
        f"{path} was rendered from an older {name}.ipynb: run python -m kwsnb.notebooks.showcase --only "
        f"{name}")
    errors = [o for c in rendered.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    assert "papermill" not in rendered.metadata  # run-to-run noise is left out
    assert len(_outputs(rendered, "image/png")) >= (2 if name == "compare_30k" else 6)
    markdown = "\n".join(_outputs(rendered, "text/markdown"))
    text = "".join(_outputs(rendered, "stream"))
    if name in render.architectures():
        # The committed model, not a new training run, scored on the real test folder.
        assert f"models/{name}/ holds a finished run" in text
        assert f"test set: {showcase.TEST_FOLDER} (1,809 clips)" in markdown
        # at the operating point stored with the model (detection.json)
        assert re.search(r"over 5\.0 min, smoothing [\d.]+ ms and threshold [\d.]+: "
                         r"\d+ of \d+ keywords found", markdown)
    elif name == "compare_30k":
        assert "Found 8 report(s) under `models`" in markdown


@pytest.mark.parametrize("figure", ["compare_30k_comparison", "tc_resnet_confusion",
                                    "tc_resnet_detection"])
def test_figures_the_readme_shows_exist(figure):
    path = REPO / "docs" / "figures" / f"{figure}.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"docs/figures/{figure}.png" in (REPO / "README.md").read_text()


def test_tagged_figures_are_taken_from_their_cells():
    notebook = nbformat.read(RENDERED / "tc_resnet.ipynb", as_version=4)
    pictures = showcase.figures(notebook)
    assert set(pictures) == {"confusion", "detection"}
    assert all(png.startswith(b"\x89PNG") for png in pictures.values())


def test_without_the_real_data_it_says_where_it_looked(tmp_path):
    with pytest.raises(showcase.ShowcaseError, match=str(tmp_path / showcase.TRAIN_FOLDER)):
        showcase.render(["tc_resnet"], out_dir=tmp_path / "out", shared_data=tmp_path)
    assert showcase.main(["--only", "tc_resnet", "--data", str(tmp_path),
                          "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


def test_unknown_notebooks_and_untrained_models_are_refused(tmp_path, real_train_dir,
                                                            real_test_dir):
    data = real_train_dir.parent
    with pytest.raises(showcase.ShowcaseError, match="unknown notebook.*nope"):
        showcase.render(["nope"], out_dir=tmp_path, shared_data=data)
    with pytest.raises(showcase.ShowcaseError, match="no finished run .* for svdf"):
        showcase.render(["svdf"], out_dir=tmp_path, models_dir=tmp_path, shared_data=data)


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
@pytest.mark.real_data
def test_rendering_an_architecture_leaves_the_committed_model_alone(tmp_path, real_train_dir,
                                                                    real_test_dir):
    before = _digests(REPO / "models" / "svdf")
    written = showcase.render(["svdf"], out_dir=tmp_path / "notebooks",
                              figure_dir=tmp_path / "figures", shared_data=real_train_dir.parent,
                              progress=False)
    assert _digests(REPO / "models" / "svdf") == before
    assert {p.name for p in written} == {"svdf.ipynb", "svdf_confusion.png",
                                         "svdf_detection.png"}
    rendered = nbformat.read(tmp_path / "notebooks" / "svdf.ipynb", as_version=4)
    report = json.loads((REPO / "models" / "svdf" /
                         f"report_{showcase.TEST_FOLDER}.json").read_text())
    # The notebook's float accuracy on the real test folder is the committed report's.
    table = "\n".join(_outputs(rendered, "text/markdown"))
    keras = report["formats"]["keras"]["accuracy"]
    assert f"| Keras (float) | {100 * keras:.2f}% |" in table
