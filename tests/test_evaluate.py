"""kwsnb.evaluate: accuracy, size and latency of every format; report files; the CLI.

Uses the small tc_resnet of tests/test_export.py: untrained for the error paths (fast), trained
on four words of ../shared/data for the numbers (slow).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

import kwsnb.evaluate.__main__ as evaluate_cli
import kwsnb.micro.__main__ as micro_cli
from kwsnb.tflite import export as exporting

from test_export import (QUANTIZED_MARGIN, SMALL_FLAGS, TEST_EXCLUDE, WORDS, exported_formats,
                         keyword_task, small_model)

ALL_FORMATS = ("keras", "tflite_float", "tflite_dynamic", "tflite_int8", "tflite_features_int8",
               "tflite_stream_external_float", "tflite_stream_external_int8",
               "tflite_stream_internal_float")
STREAM_FORMATS = ALL_FORMATS[5:]


def make_train_dir(path: Path, model, data_dir: Path, labels=None) -> Path:
    """A train_dir as kwsnb.train writes it (flags.json + best weights) for ``model``."""
    from kwsnb import train as training

    path.mkdir(parents=True, exist_ok=True)
    flags = {"model_name": "tc_resnet", "model_flags": SMALL_FLAGS, "data_dir": str(data_dir),
             "wanted_words": ",".join(WORDS), "silence_percentage": 0.0,
             "unknown_percentage": 0.0, "train_dir": str(path),
             "labels": list(WORDS) if labels is None else labels}
    (path / training.FLAGS_FILE).write_text(json.dumps(flags, indent=2))
    model.save_weights(path / training.BEST_WEIGHTS)
    return path


@pytest.fixture
def untrained_train_dir(tmp_path, real_train_dir) -> Path:
    return make_train_dir(tmp_path / "run", small_model(), real_train_dir)


def run_cli(*argv) -> tuple[int, str, str]:
    import contextlib
    import io


    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = evaluate_cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------------------------------------
# Fast: reports, subsets, errors
# ---------------------------------------------------------------------------------------------

def test_report_paths_keep_split_and_folder_reports_apart(tmp_path):
    from kwsnb import evaluate

    assert evaluate.report_paths(tmp_path, None) == (tmp_path / "report.json",
                                                     tmp_path / "report.txt")
    json_path, text_path = evaluate.report_paths(tmp_path, "/data/speech_commands_test_lite/")
    assert json_path == tmp_path / "report_speech_commands_test_lite.json"
    assert text_path == tmp_path / "report_speech_commands_test_lite.txt"


def test_stream_subset_is_reproducible_and_spread_over_the_test_set():
    from kwsnb import evaluate

    subset = evaluate.stream_subset(2172, 1000)
    assert len(subset) == 1000 and np.all(np.diff(subset) > 0)
    np.testing.assert_array_equal(subset, evaluate.stream_subset(2172, 1000))
    # Test sets are sorted by label: a random subset reaches the last labels too.
    assert subset.max() > 2000 and subset.min() < 100
    np.testing.assert_array_equal(evaluate.stream_subset(50, None), np.arange(50))
    np.testing.assert_array_equal(evaluate.stream_subset(50, 80), np.arange(50))


def test_format_report_lists_every_format_and_errors():
    from kwsnb import evaluate

    formats = {"keras": {"accuracy": 0.9, "size_bytes": 40_000, "latency_ms": None},
               "tflite_int8": {"accuracy": 0.89, "size_bytes": 200_000, "latency_ms": 0.81},
               "tflite_stream_external_int8": {"accuracy": 0.88, "size_bytes": 210_000,
                                               "latency_ms": 0.03, "agreement": 0.97,
                                               "clips": 1000, "packets_per_clip": 50},
               "tflite_stream_internal_float": {"error": "cannot build the streaming models"}}
    report = evaluate.build_report("tc_resnet", 8460, list(WORDS), formats,
                                   {"name": "test_lite", "clips": 714, "exclude": ["go"]})
    text = evaluate.format_report(report)
    assert "tc_resnet: 8,460 parameters, 4 labels" in text
    assert "714 clips; excluded go" in text
    assert "90.00%" in text and "0.810" in text and "97.00%" in text
    assert "tflite_stream_internal_float" in text and "cannot build the streaming" in text
    assert "1,000 clips, 50 packets each" in text
    assert set(report) >= {"model", "params", "labels", "formats"}


def test_missing_train_dir_is_a_clear_error(tmp_path):
    code, out, err = run_cli(tmp_path / "nowhere")
    assert code == 2 and not out
    assert "flags.json not found" in err and "Traceback" not in err


@pytest.mark.real_data
def test_missing_weights_is_a_clear_error(untrained_train_dir):
    (untrained_train_dir / "best_weights.weights.h5").unlink()
    code, _, err = run_cli(untrained_train_dir)
    assert code == 2 and "best_weights.weights.h5 not found" in err


@pytest.mark.real_data
def test_labels_that_do_not_fit_the_model_are_refused(tmp_path, real_train_dir):
    train_dir = make_train_dir(tmp_path / "run", small_model(), real_train_dir,
                               labels=["_silence_", "_unknown_", *WORDS])
    code, _, err = run_cli(train_dir)
    assert code == 2 and "lists 6 labels but the tc_resnet model has 4 outputs" in err


@pytest.mark.real_data
def test_test_folder_with_other_labels_is_refused(untrained_train_dir, real_test_dir):
    from kwsnb import evaluate

    with pytest.raises(evaluate.EvaluationError, match="not labels of the model.*exclude"):
        evaluate.evaluate_train_dir(untrained_train_dir, test_dir=real_test_dir,
                                    formats=["keras"], progress=False)


@pytest.mark.real_data
def test_exclude_needs_a_test_folder(untrained_train_dir):
    code, _, err = run_cli(untrained_train_dir, "--exclude", "on,off")
    assert code == 2 and "give --test_dir" in err


@pytest.mark.real_data
def test_empty_testing_split_falls_back_to_validation_with_a_warning(untrained_train_dir):
    # speech_commands_lite has an empty testing_list.txt: its testing split is empty.
    with pytest.warns(UserWarning, match="no testing clips.*--test_dir"):
        code, out, err = run_cli(untrained_train_dir, "--formats", "keras", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["test_set"]["name"].endswith("validation split")
    assert report["test_set"]["clips"] > 0


@pytest.mark.real_data
def test_unknown_format_is_refused(untrained_train_dir):
    code, _, err = run_cli(untrained_train_dir, "--formats", "keras,tflite_fp16")
    assert code == 2 and "unknown format(s) tflite_fp16" in err


@pytest.mark.real_data
@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_corrupt_or_missing_tflite_is_named(untrained_train_dir, real_test_dir, damage):
    path = untrained_train_dir / "tflite_float" / "model.tflite"
    path.parent.mkdir()
    if damage == "corrupt":
        path.write_bytes(b"\0\0\0\0TFL3" + b"\xff" * 300)  # right identifier, broken body
    code, _, err = run_cli(untrained_train_dir, "--test_dir", real_test_dir, "--exclude",
                           ",".join(TEST_EXCLUDE), "--formats", "tflite_float")
    assert code == 2 and str(path) in err and "--reexport" in err
    assert ("corrupt" if damage == "corrupt" else "not found") in err


# ---------------------------------------------------------------------------------------------
# Slow: a trained model, every format
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(real_train_dir, real_test_dir):
    return (keyword_task(str(real_train_dir), str(real_test_dir)),
            exported_formats(str(real_train_dir), str(real_test_dir)))


@pytest.mark.slow
@pytest.mark.real_data
def test_evaluate_formats_reports_sane_numbers(trained):
    from kwsnb import evaluate

    task, paths = trained
    results = evaluate.evaluate_formats(task.model, task.test_audio, task.test_labels, paths,
                                        stream_clips=150, latency_runs=50)
    assert list(results) == list(ALL_FORMATS)
    keras_accuracy = results["keras"]["accuracy"]
    assert keras_accuracy > 0.8
    assert abs(results["tflite_float"]["accuracy"] - keras_accuracy) <= 1 / len(task.test_labels)
    for name, entry in results.items():
        assert 0 <= entry["accuracy"] <= 1
        if name == "keras":
            assert entry["latency_ms"] is None and entry["size_bytes"] == 4 * task.model.count_params()
            continue
        assert entry["size_bytes"] == paths[name].stat().st_size
        assert 0 < entry["latency_ms"] < 100
        if name in STREAM_FORMATS:
            assert entry["clips"] == 150 and entry["packets_per_clip"] == 50
            assert entry["latency_per"] == "packet"
            # The reset protocol's half-zero first frame moves a few argmaxes (committed models:
            # 0.985-1.0); primed, every external stream computes its family's logits.
            assert entry["agreement"] >= 0.98, (name, entry)
            if "external" in name:
                assert entry["agreement_primed"] == 1.0, (name, entry)
        else:
            assert entry["clips"] == len(task.test_labels)
            assert entry["accuracy"] >= keras_accuracy - QUANTIZED_MARGIN, name
    # A 20 ms packet costs far less than a whole clip.
    assert results["tflite_stream_external_float"]["latency_ms"] < \
        results["tflite_float"]["latency_ms"]
    assert results["tflite_features_int8"]["input_scale"] > 0


@pytest.mark.slow
@pytest.mark.real_data
def test_cli_on_a_test_folder_writes_its_own_report(trained, tmp_path, real_train_dir,
                                                    real_test_dir):
    from kwsnb import models

    task, paths = trained
    train_dir = make_train_dir(tmp_path / "run", task.model, real_train_dir)
    weights = exporting.weights_digest(train_dir / "best_weights.weights.h5")
    for name, path in paths.items():  # exported from these weights: no re-export needed
        shutil.copytree(path.parent, train_dir / name, copy_function=shutil.copy)
        exporting.record_weights(train_dir / name, weights)
    shutil.rmtree(train_dir / "tflite_float")  # ... except this one, missing
    stale = train_dir / "tflite_dynamic" / "model.tflite"
    exporting.record_weights(stale.parent, "0" * 64)  # from other weights: exported again
    old = time.time() - 3600
    os.utime(stale, (old, old))
    kept = train_dir / "tflite_int8" / "model.tflite"
    kept_time = kept.stat().st_mtime
    (train_dir / "report.json").write_text('{"from": "the testing split"}')

    code, out, err = run_cli(train_dir, "--test_dir", real_test_dir, "--exclude",
                             ",".join(TEST_EXCLUDE), "--json", "--stream_clips", "100",
                             "--latency_runs", "20")
    assert code == 0, err
    report = json.loads(out)
    assert report["model"] == "tc_resnet" and report["labels"] == list(WORDS)
    assert report["params"] == models.count_params(task.model)
    assert list(report["formats"]) == list(ALL_FORMATS)
    for entry in report["formats"].values():
        assert {"accuracy", "size_bytes", "latency_ms"} <= set(entry)
    assert report["test_set"]["clips"] == len(task.test_labels)
    assert report["test_set"]["exclude"] == list(TEST_EXCLUDE)
    assert "tflite_stream_external_int8" in err  # the table goes to stderr with --json

    assert json.loads((train_dir / "report_speech_commands_test_lite.json").read_text()) == report
    assert (train_dir / "report_speech_commands_test_lite.txt").read_text().startswith("tc_resnet")
    assert json.loads((train_dir / "report.json").read_text()) == {"from": "the testing split"}
    assert (train_dir / "tflite_float" / "model.tflite").is_file()
    assert stale.stat().st_mtime > old + 60
    assert kept.stat().st_mtime == kept_time


@pytest.mark.real_data
def test_a_tflite_from_another_model_is_refused_and_the_report_kept(untrained_train_dir,
                                                                   real_test_dir):
    # The committed tc_resnet's 10-label file copied into this 4-label train_dir, recorded as
    # exported from its weights: it was scored against the wrong labels and the report replaced.

    folder = untrained_train_dir / "tflite_float"
    shutil.copytree(Path(__file__).parents[1] / "models" / "tc_resnet" / "tflite_float", folder)
    exporting.record_weights(folder, exporting.weights_digest(untrained_train_dir /
                                                      "best_weights.weights.h5"))
    report = untrained_train_dir / "report_speech_commands_test_lite.json"
    report.write_text('{"formats": "the full report"}')
    code, _, err = run_cli(untrained_train_dir, "--test_dir", real_test_dir, "--exclude",
                           ",".join(TEST_EXCLUDE), "--formats", "tflite_float")
    assert code == 2 and str(folder / "model.tflite") in err
    assert f"10 outputs where the train_dir has {len(WORDS)} labels" in err and "--reexport" in err
    assert report.read_text() == '{"formats": "the full report"}'


_KILL_DURING_EXPORT = """
import os, pathlib, signal, sys
import kwsnb.evaluate.__main__ as evaluate_cli

where = sys.argv.pop(1)
write_bytes, replace = pathlib.Path.write_bytes, os.replace

def cut_write(self, data):  # half of tflite_dynamic's model.tflite, then SIGKILL
    if where == "writing" and str(self).endswith("tflite_dynamic/model.tflite"):
        write_bytes(self, data[:len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    return write_bytes(self, data)

def cut_replace(source, target):  # its model.tflite in place, its metadata.json not yet
    if where == "moving" and str(target).endswith("tflite_dynamic/metadata.json"):
        os.kill(os.getpid(), signal.SIGKILL)
    return replace(source, target)

pathlib.Path.write_bytes, os.replace = cut_write, cut_replace
sys.exit(evaluate_cli.main(sys.argv[1:]))
"""


@pytest.mark.slow
@pytest.mark.real_data
@pytest.mark.parametrize("where", ["writing", "moving"])
def test_a_kill_during_export_leaves_a_train_dir_that_evaluates(untrained_train_dir,
                                                                real_test_dir, where):
    import signal
    import subprocess
    import sys

    argv = [str(untrained_train_dir), "--test_dir", str(real_test_dir), "--exclude",
            ",".join(TEST_EXCLUDE), "--formats", "tflite_float,tflite_dynamic",
            "--latency_runs", "1", "--stream_clips", "10"]
    repo = Path(__file__).resolve().parents[1]
    killed = subprocess.run([sys.executable, "-c", _KILL_DURING_EXPORT, where, *argv],
                            cwd=repo, capture_output=True, timeout=600,
                            env={**os.environ, "PYTHONPATH": str(repo)})
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    code, out, err = run_cli(*argv, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["formats"]["tflite_dynamic"]["accuracy"] > 0
    assert not list(untrained_train_dir.glob(".export-*"))
    assert not (untrained_train_dir / "tflite_dynamic" / ".exporting").exists()


@pytest.mark.real_data
def test_impossible_counts_are_one_error_line(untrained_train_dir, tmp_path, capsys):
    # Each was a raw traceback (numpy's choice, tf.data's batch, the calibration's slice).
    from kwsnb import data

    code, _, err = run_cli(untrained_train_dir, "--stream_clips", "-5")
    assert code == 2 and "--stream_clips must be a positive number" in err
    code, _, err = run_cli(untrained_train_dir, "--latency_runs", "-1")
    assert code == 2 and "--latency_runs must be 0" in err
    assert micro_cli.main([str(untrained_train_dir), "--out", str(tmp_path / "micro"),
                       "--clips", "0"]) == 2
    assert "--clips must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "micro").exists()
    flags = json.loads((untrained_train_dir / "flags.json").read_text())
    dataset = data.SpeechCommands(flags["data_dir"], flags["wanted_words"], progress=False,
                                  silence_percentage=0, unknown_percentage=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        dataset.dataset("training", batch_size=0)


@pytest.mark.real_data
def test_a_partial_evaluation_updates_the_report_instead_of_shrinking_it(untrained_train_dir,
                                                                        real_test_dir):
    argv = [untrained_train_dir, "--test_dir", real_test_dir, "--exclude", ",".join(TEST_EXCLUDE),
            "--json"]
    code, out, err = run_cli(*argv, "--formats", "keras,tflite_float", "--latency_runs", "5")
    assert code == 0, err
    full = json.loads(out)
    code, out, err = run_cli(*argv, "--formats", "tflite_float", "--latency_runs", "0")
    assert code == 0, err
    report = json.loads((untrained_train_dir / "report_speech_commands_test_lite.json").read_text())
    assert list(report["formats"]) == ["keras", "tflite_float"]
    assert report["formats"]["keras"] == full["formats"]["keras"]
    assert report["formats"]["tflite_float"]["latency_ms"] == \
        full["formats"]["tflite_float"]["latency_ms"]
    assert report["measurement"]["latency"] == full["measurement"]["latency"]
    # Other weights: the old entries are not theirs, so the report is replaced.
    import keras

    keras.utils.set_random_seed(1)
    small_model().save_weights(untrained_train_dir / "best_weights.weights.h5")
    code, out, err = run_cli(*argv, "--formats", "tflite_float", "--latency_runs", "0")
    assert code == 0, err
    assert list(json.loads(out)["formats"]) == ["tflite_float"]


def test_failures_name_failed_exports_and_tflm_checks_but_not_unchecked_ones():
    from kwsnb import evaluate

    report = {"formats": {
        "keras": {"accuracy": 0.9},
        "tflite_dynamic": {"error": "the converter refused"},
        "tflite_features_int8": {"accuracy": 0.9, "tflm": {"runs": False, "error": "no op"}},
        "tflite_int8": {"accuracy": 0.9, "tflm": {"runs": None, "error": "not checked"}}}}
    assert evaluate.failures(report) == {
        "tflite_dynamic": "the converter refused",
        "tflite_features_int8": "TFLite Micro cannot run it: no op"}


@pytest.mark.real_data
def test_a_failed_export_makes_the_command_exit_non_zero(untrained_train_dir, monkeypatch):
    """It used to be a warning and an "error" entry, and the command exited 0."""
    from kwsnb.tflite import export as exporting

    original = exporting.export

    def export(model, out_dir, *args, formats=None, **kwargs):
        if formats == ["tflite_dynamic"]:
            raise exporting.ExportError("the converter refused (planted)")
        return original(model, out_dir, *args, formats=formats, **kwargs)

    monkeypatch.setattr(exporting, "export", export)
    with pytest.warns(UserWarning, match="tflite_dynamic not exported"):
        code, out, err = run_cli(untrained_train_dir, "--formats", "tflite_float,tflite_dynamic",
                                 "--latency_runs", "0")
    assert code == 1
    assert "error: tflite_dynamic: the converter refused (planted)" in err
    report = json.loads((untrained_train_dir / "report.json").read_text())
    assert report["formats"]["tflite_float"]["accuracy"] >= 0  # the rest was still measured
