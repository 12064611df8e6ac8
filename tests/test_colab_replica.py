"""Colab's own stack, replayed: the setup cell must keep Colab's TensorFlow, and the notebooks
must export every format on it.

A fresh virtual environment gets the packages a notebook touches at the versions Colab's GPU
runtime publishes (``../shared/colab/pip-freeze.gpu.txt``: TensorFlow 2.20, Keras 3.13, numpy
2.1, ipywidgets 7.7, Python 3.13 where this machine has it). Then, as a learner on Colab would:

1. the first code cell of a notebook runs as written, installing this checkout where Colab
   installs the git URL (with an empty pip cache, so its time is what a fresh runtime pays);
2. every package Colab had keeps its version, and TensorFlow 2.20 still imports;
3. papermill (a test tool here; Colab runs cells itself) runs ``00_data_setup``, ``tc_resnet``
   and ``compare_30k`` in the quick preset on the offline TTS set;
4. ``python -m kwsnb.evaluate`` exports all seven TFLite formats of the notebook's model on
   TensorFlow 2.20: none may fail, int8 streams must agree with int8 (the export itself checks
   the logits bit for bit) and TensorFlow Lite Micro must run the features-in model.

The environment is rebuilt on every run (pip's own cache makes that about a minute after the
first); ``KWSNB_COLAB_VENV`` keeps it in a folder of your choice instead, for a look around.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from conftest import REPO_ROOT, require_shared
from test_notebooks import assert_no_errors, outputs

pytestmark = pytest.mark.slow

COLAB_DIR = REPO_ROOT.parent / "shared" / "colab"
FREEZE = COLAB_DIR / "pip-freeze.gpu.txt"
PYTHON_313 = Path("/root/.pyenv/versions/3.13.0/bin/python3.13")
# What a notebook imports (directly or through kwsnb), at Colab's versions.
NOTEBOOK_PACKAGES = ("tensorflow", "keras", "numpy", "ipywidgets", "ipykernel", "ipython",
                     "jupyter_client", "notebook", "nbformat", "nbclient", "traitlets",
                     "librosa", "matplotlib", "scipy", "soundfile", "soxr", "tqdm", "h5py",
                     "anywidget", "pandas", "requests")
# Test tools Colab lacks: headless notebook runs and the TFLM interpreter.
TEST_TOOLS = ("papermill", "tflite-micro")
# The packages the setup cell must leave alone whatever else happens.
KEPT = ("tensorflow", "keras", "numpy", "ipywidgets")
CELL_TIMEOUT_S = 600


def _python() -> str:
    """Python 3.13, Colab's, where this machine has it; else this one (said in the output)."""
    found = os.environ.get("KWSNB_COLAB_PYTHON") or (
        str(PYTHON_313) if PYTHON_313.exists() else shutil.which("python3.13"))
    if not found:
        print(f"no Python 3.13 here: the replica uses {sys.version.split()[0]} with Colab's pins")
    return found or sys.executable


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command[:6])} ... failed ({result.returncode}):\n"
                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def _freeze(python: str) -> dict[str, str]:
    lines = _run([python, "-m", "pip", "freeze", "--all"]).stdout.splitlines()
    versions = {}
    for line in lines:  # "name==version", or "name @ file:///..." for a local install
        name, version = line.split(" @ ", 1) if " @ " in line else line.split("==", 1)
        versions[name.lower().replace("_", "-")] = version
    return versions


def _constraints(folder: Path) -> Path:
    """Colab's freeze as pip constraints (git checkouts and CUDA-local torch builds left out:
    pip cannot resolve those, and no notebook imports them)."""
    lines = [line for line in FREEZE.read_text().splitlines()
             if "==" in line and " @ " not in line and "+cu" not in line]
    path = folder / "colab-constraints.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def replica(tmp_path_factory):
    """(python of the replica, its pinned versions, the setup cell's report)."""
    require_shared(FREEZE)
    work = tmp_path_factory.mktemp("colab")
    venv = Path(os.environ.get("KWSNB_COLAB_VENV") or work / "venv")
    constraints = _constraints(work)
    started = time.monotonic()
    if not (venv / "bin" / "python").exists():
        _run([_python(), "-m", "venv", str(venv)])
    python = str(venv / "bin" / "python")
    _run([python, "-m", "pip", "install", "-q", "-c", str(constraints), *NOTEBOOK_PACKAGES])
    build_s = time.monotonic() - started
    before = _freeze(python)
    colab = {name: version for name, version in
             (line.split("==", 1) for line in constraints.read_text().splitlines())}
    for name in KEPT:
        assert before[name] == colab[name], f"the replica has {name} {before[name]}"

    # 1. The setup cell as written, with this checkout for the git URL, and a cold pip cache.
    from kwsnb.notebooks import render

    cell = next(c for c in nbformat.read(REPO_ROOT / "notebooks" / "tc_resnet.ipynb",
                                         as_version=4).cells if c.cell_type == "code")
    assert render.INSTALL_SPEC in cell.source
    source = cell.source.replace(render.INSTALL_SPEC, str(REPO_ROOT))
    env = {**os.environ, "PIP_CACHE_DIR": str(work / "cold-pip-cache")}
    env.pop("PYTHONPATH", None)
    started = time.monotonic()
    _run([python, "-c", source], env=env, cwd=work)
    setup_s = time.monotonic() - started
    shutil.rmtree(env["PIP_CACHE_DIR"], ignore_errors=True)  # used once, for the timing
    after = _freeze(python)
    report = {"python": _run([python, "-c", "import sys; print(sys.version.split()[0])"]).stdout.strip(),
              "build_s": round(build_s), "setup_cell_s": round(setup_s, 1),
              "added": sorted(set(after) - set(before)),
              "changed": {n: (before[n], after[n]) for n in before
                          if n in after and before[n] != after[n]},
              "removed": sorted(set(before) - set(after))}
    print(f"Colab replica: {json.dumps(report)}")
    _run([python, "-m", "pip", "install", "-q", "-c", str(constraints), *TEST_TOOLS])
    yield python, before, report
    if not os.environ.get("KWSNB_COLAB_VENV"):  # ~3 GB, and the next run rebuilds it anyway
        shutil.rmtree(venv, ignore_errors=True)


def test_setup_cell_keeps_colabs_tensorflow(replica):
    python, before, report = replica
    assert not report["changed"] and not report["removed"], report
    assert "kwsnb" in report["added"] and "tensorflow-cpu" not in report["added"], report
    versions = _run([python, "-c", "import tensorflow as tf, keras, numpy; "
                     "print(tf.__version__, keras.__version__, numpy.__version__, "
                     "tf.sysconfig.get_build_info().get('is_cuda_build'))"]).stdout.split()
    assert versions[:3] == [before["tensorflow"], before["keras"], before["numpy"]]
    assert versions[3] == "True", "Colab's TensorFlow is the CUDA build; it must stay that one"
    # Well under a minute on a fresh runtime (measured here: about 6 s).
    assert report["setup_cell_s"] < 60, report


def _papermill(python: str, name: str, out_dir: Path, **parameters) -> nbformat.NotebookNode:
    output = out_dir / f"{name}.out.ipynb"
    command = [python, "-m", "papermill", str(REPO_ROOT / "notebooks" / f"{name}.ipynb"),
               str(output), "--cwd", str(out_dir), "-k", "python3",
               "--execution-timeout", str(CELL_TIMEOUT_S), "--no-progress-bar"]
    for key, value in parameters.items():
        command += ["-p", key, str(value)]
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "MPLBACKEND")}
    _run(command, env=env, cwd=out_dir)
    notebook = nbformat.read(output, as_version=4)
    assert_no_errors(notebook)
    return notebook


def test_notebooks_export_every_format_on_colabs_stack(replica, tmp_path):
    python, before, _ = replica
    data_dir, models_dir = tmp_path / "synthetic", tmp_path / "models"
    _papermill(python, "00_data_setup", tmp_path, data_source="synthetic",
               data_dir=data_dir, quick=True)
    notebook = _papermill(python, "tc_resnet", tmp_path, data_source="synthetic",
                          data_dir=data_dir, models_dir=models_dir, quick=True)
    # The notebook says what it runs on.
    assert f"TensorFlow {before['tensorflow']}" in "".join(outputs(notebook, "stream"))
    compare = _papermill(python, "compare_30k", tmp_path, models_dir=models_dir)
    assert "Found 1 report(s) under" in "".join(outputs(compare, "text/markdown"))

    # Every format of the notebook's model, exported on TensorFlow 2.20.
    train_dir = models_dir / "tc_resnet"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    _run([python, "-m", "kwsnb.evaluate", str(train_dir), "--stream_clips", "20",
          "--latency_runs", "5"], env=env, cwd=tmp_path)
    report = json.loads((train_dir / "report.json").read_text())
    formats = report["formats"]
    assert set(formats) == {"keras", "tflite_float", "tflite_dynamic", "tflite_int8",
                            "tflite_features_int8", "tflite_stream_external_float",
                            "tflite_stream_external_int8", "tflite_stream_internal_float"}
    for name, entry in formats.items():
        assert "error" not in entry, (name, entry)
    assert formats["tflite_stream_external_int8"]["agreement_primed"] == 1.0
    assert formats["tflite_stream_external_float"]["agreement_primed"] == 1.0
    assert formats["tflite_features_int8"]["tflm"]["runs"] is True, formats["tflite_features_int8"]


@pytest.mark.real_data
def test_mobilenet_v2_streams_in_int8_on_colabs_stack(replica, real_train_dir, real_test_dir,
                                                     tmp_path):
    """TensorFlow 2.20 fuses mobilenet_v2's residual add into a FULLY_CONNECTED bias in the
    streaming graph (kwsnb.tflite.flatbuffer.unfuse_computed_bias undoes it): the committed model's
    int8 stream must export there and compute the int8 model's logits (the export checks them
    bit for bit; the report's primed agreement follows)."""
    python, _, _ = replica
    train_dir = tmp_path / "mobilenet_v2"
    train_dir.mkdir()
    committed = REPO_ROOT / "models" / "mobilenet_v2"
    flags = json.loads((committed / "flags.json").read_text())
    flags.update(data_dir=str(real_train_dir), train_dir=str(train_dir))
    (train_dir / "flags.json").write_text(json.dumps(flags))
    shutil.copy(committed / "best_weights.weights.h5", train_dir)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    _run([python, "-m", "kwsnb.evaluate", str(train_dir), "--test_dir", str(real_test_dir),
          "--exclude", "on,off", "--formats", "tflite_int8,tflite_stream_external_int8",
          "--stream_clips", "100", "--latency_runs", "0"], env=env, cwd=tmp_path)
    report = json.loads(next(train_dir.glob("report_*.json")).read_text())
    stream = report["formats"]["tflite_stream_external_int8"]
    assert "error" not in stream, stream
    assert stream["agreement_primed"] == 1.0
