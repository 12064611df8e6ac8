"""kwsnb.notebooks.sweep: a notebook over a grid of parameters (papermill), one folder per run, a summary.

Fast tests check the grid, the plan (notebook per architecture, parameters checked against the
notebook's parameters cell) and the summary table. The slow test sweeps the cheapest
architecture notebook in the quick preset over two runs on the synthetic set, one of which fails,
then runs the sweep again.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kwsnb.notebooks import sweep

REPO = Path(__file__).resolve().parents[1]


def test_grid_options_and_values_read_like_papermill():
    assert sweep.parse_grid_option("model=svdf,tc_resnet") == ("model", ["svdf", "tc_resnet"])
    assert sweep.parse_grid_option("quick=True") == ("quick", [True])
    assert sweep.parse_grid_option('training_steps=["60,60", "120,120"]') == \
        ("training_steps", ["60,60", "120,120"])
    assert [sweep.parse_value(v) for v in ("None", "3", "0.5", "60,60", "x")] == \
        [None, 3, 0.5, "60,60", "x"]
    with pytest.raises(sweep.SweepError, match="name=value1,value2"):
        sweep.parse_grid_option("model")
    assert sweep.combinations({"a": [1, 2], "b": ["x", "y"]}) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]


def test_grid_files_json_and_yaml(tmp_path):
    (tmp_path / "g.json").write_text(json.dumps({"model": ["svdf", "tc_resnet"], "quick": True}))
    assert sweep.read_grid_file(tmp_path / "g.json") == [
        {"model": "svdf", "quick": True}, {"model": "tc_resnet", "quick": True}]
    (tmp_path / "g.yaml").write_text("- {model: svdf, training_steps: '60,60'}\n"
                                     "- {model: mobilenet}\n")
    assert sweep.read_grid_file(tmp_path / "g.yaml") == [
        {"model": "svdf", "training_steps": "60,60"}, {"model": "mobilenet"}]
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(sweep.SweepError, match="mapping"):
        sweep.read_grid_file(tmp_path / "bad.json")


def test_plan_maps_the_architecture_to_its_notebook_and_checks_parameters(tmp_path):
    combos = sweep.combinations({"model": ["svdf", "tc_resnet"], "quick": [True]})
    runs = sweep.plan(combos, {"data_source": "synthetic"}, sweep.DEFAULT_NOTEBOOK,
                      tmp_path, cwd=REPO)
    assert [r.notebook for r in runs] == [REPO / "notebooks" / "svdf.ipynb",
                                          REPO / "notebooks" / "tc_resnet.ipynb"]
    for run in runs:  # `model` picked the notebook; it is not one of its parameters
        assert "model" not in run.parameters and run.grid["model"] == run.notebook.stem
        assert run.parameters["models_dir"] == str(run.folder.resolve())
        assert run.folder.parent == tmp_path and run.name.startswith(f"model-{run.notebook.stem}")
    again = sweep.plan(combos, {"data_source": "synthetic"}, sweep.DEFAULT_NOTEBOOK, tmp_path,
                       cwd=REPO)
    assert [r.name for r in again] == [r.name for r in runs]  # stable: a rerun finds its runs
    other = sweep.plan(combos, {"data_source": "speech_commands"}, sweep.DEFAULT_NOTEBOOK,
                       tmp_path, cwd=REPO)
    assert not {r.name for r in other} & {r.name for r in runs}  # other -p: other runs
    with pytest.raises(sweep.SweepError, match="has no parameter 'epochs'.*data_source"):
        sweep.plan(combos, {"epochs": 3}, sweep.DEFAULT_NOTEBOOK, tmp_path, cwd=REPO)
    with pytest.raises(sweep.SweepError, match="resnet.ipynb not found.*model name"):
        sweep.plan([{"model": "resnet"}], {}, sweep.DEFAULT_NOTEBOOK, tmp_path, cwd=REPO)
    with pytest.raises(sweep.SweepError, match="needs model"):
        sweep.plan([{"quick": True}], {}, sweep.DEFAULT_NOTEBOOK, tmp_path, cwd=REPO)


def test_summary_table_shows_what_varies_and_the_errors():
    rows = [{"run": "a", "notebook": "svdf.ipynb", "model": "svdf", "quick": True,
             "status": "ok", "action": "ran", "wall_s": 12.3, "error": "",
             "keras_accuracy": 0.5, "keras_size_bytes": 2048},
            {"run": "b", "notebook": "x.ipynb", "model": "x", "quick": True,
             "status": "failed", "action": "skipped", "wall_s": 1.0, "error": "boom"}]
    text = sweep.format_summary(rows)
    header, first, second = text.splitlines()[:3]
    assert header.split() == ["#", "model", "status", "wall", "s", "keras", "acc%", "keras", "KB"]
    assert first.split() == ["1", "svdf", "ok", "12", "50.0", "2.0"]
    assert second.split() == ["2", "x", "failed", "(earlier)", "1"]
    assert text.endswith("errors:\n#2: boom")


def test_cli_errors_are_one_line(tmp_path):
    for argv, message in ((["--grid", "model=svdf"], "--out is required"),
                          (["--out", str(tmp_path), "--grid", "model=nope"], "nope.ipynb")):
        result = subprocess.run([sys.executable, "-m", "kwsnb.notebooks.sweep", *argv], cwd=REPO,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert message in result.stderr


@pytest.mark.slow
def test_sweep_two_quick_runs_one_failing_then_rerun(synthetic_dir, tmp_path):
    """svdf in the quick preset (10,10 steps) on the synthetic set, two runs at a time: one
    trains, exports and reports; the other asks for a word the data does not have and fails
    without stopping the first. Run again: the finished run is skipped, the failed one retried."""
    out = tmp_path / "sweep"
    argv = [sys.executable, "-m", "kwsnb.notebooks.sweep", "--out", str(out), "--jobs", "2",
            "--grid", 'wanted_words=["yes,no,up,down", "yes,nosuchword"]',
            "-p", "model", "svdf", "-p", "quick", "True", "-p", "data_source", "synthetic",
            "-p", "data_dir", str(synthetic_dir), "-p", "training_steps", "10,10"]
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the kernel draws PNGs
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    started = time.monotonic()
    result = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=1200,
                            env=env)
    first_seconds = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr  # one run failed
    with (out / sweep.SUMMARY_FILE).open() as f:
        rows = list(csv.DictReader(f))
    assert [r["wanted_words"] for r in rows] == ["yes,no,up,down", "yes,nosuchword"]
    good, bad = rows
    assert good["status"] == "ok" and good["action"] == "ran" and good["error"] == ""
    assert bad["status"] == "failed" and "TrainError" in bad["error"]
    assert "nosuchword" in bad["error"]
    folder = out / good["run"]
    assert (folder / "svdf.ipynb").is_file() and (folder / "svdf" / "best_weights.weights.h5").is_file()
    report = json.loads((folder / sweep.REPORT_FILE).read_text())
    assert report["model"] == "svdf"
    for fmt, entry in report["formats"].items():
        assert float(good[f"{fmt}_accuracy"]) == pytest.approx(entry["accuracy"])
        assert int(good[f"{fmt}_size_bytes"]) == entry["size_bytes"] > 0
    assert float(good["wall_s"]) > 0 and float(bad["wall_s"]) > 0
    assert json.loads((out / bad["run"] / sweep.RUN_FILE).read_text())["status"] == "failed"
    assert "ok" in result.stdout and "errors:" in result.stdout and "nosuchword" in result.stdout

    again = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                           env=env)
    with (out / sweep.SUMMARY_FILE).open() as f:
        rows = {r["wanted_words"]: r for r in csv.DictReader(f)}
    assert rows["yes,no,up,down"]["action"] == "skipped"
    assert rows["yes,no,up,down"]["status"] == "ok"
    assert rows["yes,no,up,down"]["keras_accuracy"] == good["keras_accuracy"]
    assert rows["yes,nosuchword"]["action"] == "ran"
    assert "1 already finished, 1 to run" in again.stdout
    print(f"sweep of 2 quick runs: {first_seconds:.0f} s")


def test_numbers_from_a_sweeps_p_reach_the_command_line_as_flags(tmp_path):
    # papermill injects `-p learning_rates 0.001` as a float: it failed inside argparse.
    from kwsnb import notebooks
    from kwsnb.models import seed
    from kwsnb import train as training

    run = notebooks.settings(True, 300, 0.001)
    argv = seed.seed_command("svdf", str(tmp_path), str(tmp_path), run.steps, run.learning_rates,
                             extra=["--eval_step_interval", 100])
    flags = training.parse_command_line(argv)
    assert (flags["how_many_training_steps"], flags["learning_rate"]) == ("300", "0.001")
    assert flags["eval_step_interval"] == 100
    assert training.Stages.from_flags(flags["how_many_training_steps"],
                                      flags["learning_rate"]).rates == (0.001,)


@pytest.mark.slow
def test_a_killed_sweep_takes_its_run_and_kernel_along_and_a_busy_run_is_not_started_twice(
        tmp_path):
    import signal

    import nbformat
    import psutil

    notebook = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell("seconds = 1")
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [parameters, nbformat.v4.new_code_cell("import time\ntime.sleep(seconds)")]
    bare = tmp_path / "bare.ipynb"
    nbformat.write(notebook, bare)
    assert sweep.main(["--out", str(tmp_path / "x"), "--notebook", str(bare)]) == 2  # no kernel
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    nbformat.write(notebook, tmp_path / "sleep.ipynb")
    out = tmp_path / "sweep"
    argv = [sys.executable, "-m", "kwsnb.notebooks.sweep", "--out", str(out), "--notebook",
            str(tmp_path / "sleep.ipynb"), "--grid", "seconds=300"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    parent = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline, descendants = time.monotonic() + 180, []
    while time.monotonic() < deadline:  # until the kernel runs the sleeping cell
        descendants = psutil.Process(parent.pid).children(recursive=True)
        if any("ipykernel" in " ".join(p.cmdline()) for p in descendants if p.is_running()):
            break
        time.sleep(0.5)
    assert len(descendants) >= 2, "the run and its kernel never started"
    os.kill(parent.pid, signal.SIGKILL)  # no clean-up in the sweep itself
    parent.wait()
    _, alive = psutil.wait_procs(descendants, timeout=30)
    assert not alive, f"left running: {[' '.join(p.cmdline()) for p in alive]}"

    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    holder = subprocess.Popen(  # another process still runs it
        [sys.executable, "-c", "import fcntl, sys, time\nh = open(sys.argv[1], 'a')\n"
         "fcntl.flock(h, fcntl.LOCK_EX)\nh.truncate(0)\nh.write('process 4242')\nh.flush()\n"
         "print('held', flush=True)\ntime.sleep(300)", str(folder / sweep.LOCK_FILE)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        again = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=300)
    finally:
        holder.kill()
        holder.wait()
    assert f"busy {folder.name}: already running (process 4242); not started twice" in \
        again.stdout, again.stdout + again.stderr
