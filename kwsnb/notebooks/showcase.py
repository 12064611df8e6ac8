"""The notebooks with their results, for readers: every notebook run on the repository's trained
models and real test clips, written to ``docs/notebooks/`` with its outputs.

``python -m kwsnb.notebooks.showcase`` regenerates all ten (``--only NAME ...`` some of them). The source
notebooks in ``notebooks/`` stay output-free for Colab; these are the same notebooks executed
by papermill in a scratch folder that holds

* ``models/``: a copy of the repository's ``models/<arch>`` folders, so the run never writes
  into the committed ones. Each holds a finished run, which the architecture notebooks use as
  it is (``kwsnb.notebooks.train``): nothing is trained again, everything else (evaluation of
  every format, streaming, the long recording, the widgets' first views) runs for real;
* ``data/``: a link to the real Speech Commands subsets (``../shared/data`` by default:
  the training folder for noise and the data notebook, the test folder for every score).

Cells tagged ``figure:<name>`` in the templates also give their picture to
``docs/figures/<notebook>_<name>.png`` (the README shows some of them). Without the real data
the command stops with a message saying where it looked.
"""
from __future__ import annotations

import argparse
import base64
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence


from kwsnb.notebooks import render as rendering
from kwsnb.models import seed

REPO_ROOT = rendering.REPO_ROOT
OUT_DIR = REPO_ROOT / "docs" / "notebooks"
FIGURE_DIR = REPO_ROOT / "docs" / "figures"
MODELS_DIR = REPO_ROOT / "models"
SHARED_DATA = Path(os.environ.get("KWSNB_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
TRAIN_FOLDER = "speech_commands_lite"
TEST_FOLDER = "speech_commands_test_lite"
TEST_EXCLUDE = seed.SC_LITE10_TEST_EXCLUDE  # the test folder's keywords the models were not taught
FIGURE_TAG = "figure:"
CELL_TIMEOUT_S = 1800
# What only differs between runs (times, the papermill version) is left out of the files.
VOLATILE_METADATA = ("papermill", "execution", "widgets")


class ShowcaseError(RuntimeError):
    """What the reader of the command's output must fix (missing data or models)."""


def _trained_architectures(models_dir: Path) -> dict[str, dict]:
    """{architecture: flags} of the finished runs in ``models_dir``."""
    from kwsnb import train as training

    runs = {name: training.finished_run(models_dir / name) for name in rendering.architectures()}
    return {name: flags for name, flags in runs.items() if flags is not None}


def parameters(name: str, wanted_words: str) -> dict:
    """The papermill parameters of notebook ``name`` in the scratch folder's layout."""
    train_data, test_data = f"data/{TRAIN_FOLDER}", f"data/{TEST_FOLDER}"
    if name == "00_data_setup":
        return {"data_source": train_data, "data_dir": train_data, "wanted_words": wanted_words}
    if name == "compare_30k":
        return {"models_dir": "models", "report_name": f"report_{TEST_FOLDER}.json"}
    return {"data_source": train_data, "data_dir": train_data, "models_dir": "models",
            "wanted_words": wanted_words, "test_dir": test_data, "test_exclude": TEST_EXCLUDE,
            "recipe": "sc_lite10"}


def _scratch(root: Path, models_dir: Path, shared_data: Path, names: Sequence[str]) -> None:
    (root / "models").mkdir(parents=True)
    for name in names:
        shutil.copytree(models_dir / name, root / "models" / name,
                        ignore=shutil.ignore_patterns("backup", "logs", "last_weights.*"))
    (root / "data").symlink_to(shared_data.resolve(), target_is_directory=True)


def tidy(notebook) -> None:
    """Leaves out what only differs between runs: papermill's timings and the widgets' state
    (a static page cannot run them; their first views are ordinary outputs). The cell of
    parameters papermill injected stays: it says what the run was given."""
    for key in VOLATILE_METADATA:
        notebook.metadata.pop(key, None)
    for cell in notebook.cells:
        for key in VOLATILE_METADATA:
            cell.metadata.pop(key, None)
        for output in cell.get("outputs", []):
            output.get("data", {}).pop("application/vnd.jupyter.widget-view+json", None)


def figures(notebook) -> dict[str, bytes]:
    """PNG pictures of the cells tagged ``figure:<name>`` (the last picture of each cell)."""
    found = {}
    for cell in notebook.cells:
        names = [t[len(FIGURE_TAG):] for t in cell.metadata.get("tags", [])
                 if t.startswith(FIGURE_TAG)]
        pictures = [o["data"]["image/png"] for o in cell.get("outputs", [])
                    if "image/png" in o.get("data", {})]
        for name in names:
            if pictures:
                found[name] = base64.b64decode(pictures[-1])
    return found


def render(names: Sequence[str] | None = None, out_dir: Path = OUT_DIR,
           figure_dir: Path = FIGURE_DIR, models_dir: Path = MODELS_DIR,
           shared_data: Path = SHARED_DATA, progress: bool = True) -> list[Path]:
    """Runs the notebooks ``names`` (None: all ten, in reading order, the comparison last) and
    writes them with their outputs to ``out_dir``; returns the files written."""
    import nbformat
    import papermill

    for folder in (shared_data / TRAIN_FOLDER, shared_data / TEST_FOLDER):
        if not folder.is_dir():
            raise ShowcaseError(f"real test data not found at {folder}: the rendered notebooks "
                                "show results on real Speech Commands clips (set "
                                "KWSNB_SHARED_DATA to the folder holding "
                                f"{TRAIN_FOLDER}/ and {TEST_FOLDER}/)")
    all_names = rendering.notebook_names()
    names = list(all_names if names is None else names)
    unknown = [n for n in names if n not in all_names]
    if unknown:
        raise ShowcaseError(f"unknown notebook(s) {', '.join(unknown)}; choose from "
                            f"{', '.join(all_names)}")
    trained = _trained_architectures(models_dir)
    missing = [n for n in names if n in rendering.architectures() and n not in trained]
    if missing:
        raise ShowcaseError(f"no finished run in {models_dir} for {', '.join(missing)}: train "
                            "it first (benchmarks/sc_lite10.py)")
    wanted_words = next(iter(trained.values()), {}).get("wanted_words") or None
    names.sort(key=lambda n: (n == "compare_30k", all_names.index(n)))

    out_dir.mkdir(parents=True, exist_ok=True)
    figure_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory(prefix="kwsnb_showcase_") as scratch:
        root = Path(scratch)
        _scratch(root, models_dir, shared_data, trained)
        backend = os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend draws PNGs
        try:
            for name in names:
                started = time.monotonic()
                output = root / f"{name}.ipynb"
                papermill.execute_notebook(
                    str(rendering.NOTEBOOK_DIR / f"{name}.ipynb"), str(output),
                    parameters=parameters(name, wanted_words), cwd=str(root),
                    kernel_name="python3", progress_bar=False,
                    execution_timeout=CELL_TIMEOUT_S)
                notebook = nbformat.read(output, as_version=4)
                tidy(notebook)
                target = out_dir / f"{name}.ipynb"
                nbformat.write(notebook, target)
                written.append(target)
                for figure, png in figures(notebook).items():
                    path = figure_dir / f"{name}_{figure}.png"
                    path.write_bytes(png)
                    written.append(path)
                if progress:
                    print(f"{name}: {time.monotonic() - started:.0f} s -> {target}", flush=True)
        finally:
            if backend is not None:
                os.environ["MPLBACKEND"] = backend
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kwsnb.notebooks.showcase",
        description="Run every notebook on the repository's trained models and real test clips "
                    "and write them, with their outputs, to docs/notebooks/.")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="these notebooks only (e.g. tc_resnet compare_30k)")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="where the notebooks go")
    parser.add_argument("--figures", type=Path, default=FIGURE_DIR,
                        help="where the tagged figures go")
    parser.add_argument("--models_dir", type=Path, default=MODELS_DIR,
                        help="trained models, one finished run per architecture (never written)")
    parser.add_argument("--data", type=Path, default=SHARED_DATA,
                        help=f"the folder holding {TRAIN_FOLDER}/ and {TEST_FOLDER}/")
    args = parser.parse_args(argv)
    try:
        render(args.only, args.out, args.figures, args.models_dir, args.data)
    except ShowcaseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
