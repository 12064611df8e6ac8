"""kwsnb.train: the seed's command lines, staged schedule, errors before training, resume, reports.

Training runs on the synthetic TTS set (``synthetic_dir``); the seed's real command lines are
parsed as written in ../shared/reference/seed_commands.md (kept in ``kwsnb.models.seed``).
"""
from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from kwsnb import models
from kwsnb.models import seed
from kwsnb import pipeline
from kwsnb import streaming
from kwsnb import train as training
from kwsnb.train import loop as training_loop

REPO = Path(__file__).resolve().parents[1]
WORDS = "yes,no,up,down"


def quick_argv(data_dir, train_dir, model="svdf", steps="40,40", interval=20, extra=()):
    return ["--data_url", "", "--data_dir", str(data_dir), "--train_dir", str(train_dir),
            "--how_many_training_steps", steps, "--learning_rate", "0.001,0.0005",
            "--eval_step_interval", str(interval), "--wanted_words", WORDS, "--batch_size", "50",
            *extra, model]


# --- command lines ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", models.MODELS)
def test_every_seed_command_line_parses_to_its_architecture(name):
    argv = seed.seed_command(name, "/data", "/models", steps="300,300",
                             learning_rates="0.001,0.0005")
    flags = training.parse_command_line(argv)
    assert flags["model_name"] == name
    assert flags["how_many_training_steps"] == "300,300"
    assert flags["train_dir"].startswith("/models")
    model_flags = training.resolved_model_flags(flags)
    built = training.build_model(flags)  # the seed's values build the seed's parameter count
    assert models.count_params(built) == models.architecture(name).SEED_PARAMS
    for key, value in model_flags.items():
        assert key in models.default_flags(name), key


def test_staged_learning_rate_follows_the_seed():
    stages = training.Stages.from_flags("3,2,1", "0.1,0.01,0.001")
    schedule = training.learning_rate_schedule(stages, "linear")
    # Optimizer step k (from 0) is the seed's step k + 1.
    rates = [float(schedule(k)) for k in range(6)]
    np.testing.assert_allclose(rates, [0.1, 0.1, 0.1, 0.01, 0.01, 0.001], rtol=1e-6)
    exp = training.learning_rate_schedule(stages, "exp")
    np.testing.assert_allclose([float(exp(0)), float(exp(6))], [0.1, 0.001], rtol=1e-5)


def test_a_single_stage_schedule_trains_at_its_rate():
    # --how_many_training_steps 20 --learning_rate 0.001 was an IndexError inside Keras.
    import keras

    stages = training.Stages.from_flags("20", "0.001")
    for kind in ("linear", "exp"):
        optimizer = keras.optimizers.Adam(
            learning_rate=training.learning_rate_schedule(stages, kind))
        assert float(optimizer.learning_rate) == pytest.approx(0.001), kind
        optimizer.iterations.assign(19)
        assert float(optimizer.learning_rate) == pytest.approx(0.001), kind


def test_validation_interval_divides_the_total():
    assert training.validation_interval(60000, 400) == 400
    assert training.validation_interval(600, 400) == 300
    assert training.validation_interval(70, 400) == 70


@pytest.mark.parametrize("argv, message", [
    (["--data_dir", "x", "resnet"], "unknown model name 'resnet'"),
    (["--data_dir", "/tmp/x"], "no model name given"),
    (["--bogus_flag", "1", "svdf"], "unknown training flag"),
    (["--feature_type", "mfcc_tf", "svdf"], "--feature_type"),
    (["--preprocess", "micro", "svdf"], "--preprocess"),
    (["svdf", "--svdf_unitz", "4"], "unknown svdf flag"),
    (["svdf", "--svdf_units1", "'a','b'"], "svdf_units1"),
])
def test_command_line_errors_name_the_flag(argv, message):
    with pytest.raises(training.TrainError, match=message):
        flags = training.parse_command_line(argv)
        training.build_model(flags)


@pytest.mark.parametrize("name", models.MODELS)
def test_a_train_dir_accepts_its_own_command_line_again(name, tmp_path):
    # flags.json stores tuples such as "(3,1)" kernels as lists: still the same model.
    flags = training.parse_command_line(seed.seed_command(name, "/data", str(tmp_path)))
    train_dir = Path(flags["train_dir"])
    train_dir.mkdir(parents=True)
    saved = {**flags, "labels": ["_silence_", "_unknown_", "yes"]}
    (train_dir / training.FLAGS_FILE).write_text(json.dumps(saved, default=str))
    training_loop._check_compatible(train_dir, saved)
    changed = training.parse_command_line(
        seed.seed_command(name, "/data", str(tmp_path), extra=["--dct_num_features", "10"]))
    with pytest.raises(training.TrainError, match="other model flags"):
        training_loop._check_compatible(train_dir, {**changed, "labels": saved["labels"]})


def test_bad_schedule_is_refused_before_any_data_is_read(tmp_path):
    argv = quick_argv(tmp_path / "no_data", tmp_path / "run", steps="40,40,40")
    with pytest.raises(training.TrainError, match="same length"):
        pipeline.run(argv)
    assert not (tmp_path / "run").exists()


def test_impossible_model_flag_is_refused_before_any_data_is_read(tmp_path):
    argv = quick_argv(tmp_path / "no_data", tmp_path / "run", model="mobilenet")
    argv += ["--cnn1_strides", "(8,1)"]
    with pytest.raises(training.TrainError, match="cnn1_strides"):
        pipeline.run(argv)


def test_missing_data_says_which_command_makes_it(tmp_path):
    argv = quick_argv(tmp_path / "no_data", tmp_path / "run")
    with pytest.raises(training.TrainError, match="data_setup"):
        pipeline.run(argv)


def test_cli_prints_one_error_line_not_a_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "kwsnb.train", *quick_argv(tmp_path / "no_data", tmp_path / "r")],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")


# --- training --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_dir(synthetic_dir, tmp_path_factory):
    """svdf trained for 80 steps on the synthetic set, exported and evaluated."""
    train_dir = tmp_path_factory.mktemp("train") / "svdf"
    flags, reports = pipeline.run(quick_argv(synthetic_dir, train_dir), progress=False)
    return train_dir, flags, reports


@pytest.mark.slow
def test_training_writes_the_train_dir_and_a_report_with_every_format(trained_dir):
    train_dir, flags, (report,) = trained_dir
    saved = json.loads((train_dir / training.FLAGS_FILE).read_text())
    assert saved["labels"] == ["_silence_", "_unknown_", *WORDS.split(",")]
    assert saved["model_flags"]["label_count"] == 6
    assert saved["training_seconds"] > 0
    for name in (training.BEST_WEIGHTS, training.LAST_WEIGHTS, "report.txt"):
        assert (train_dir / name).is_file(), name
    assert list((train_dir / "logs").rglob("events.out.tfevents.*")), "no TensorBoard log"
    with (train_dir / training.TRAINING_LOG).open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]  # 80 steps, validated every 20

    on_disk = json.loads((train_dir / "report.json").read_text())
    assert on_disk == json.loads(json.dumps(report))
    assert on_disk["model"] == "svdf" and on_disk["labels"] == saved["labels"]
    assert on_disk["params"] == saved["params"]
    from kwsnb import evaluate

    assert set(on_disk["formats"]) == set(evaluate.ALL_FORMATS)
    for name, result in on_disk["formats"].items():
        assert 0.0 <= result["accuracy"] <= 1.0, name
        assert result["size_bytes"] > 0, name
        if name != "keras":
            assert result["latency_ms"] > 0, name
        if "stream" in name:
            assert 0.0 <= result["agreement"] <= 1.0, name
    # By default the front end computes the seed's MFCCs (no normalization).
    from kwsnb.tflite import export as exporting

    model, _ = training.load_trained_model(train_dir)
    front_end = streaming.mfcc_of(streaming.front_end_layer(model))
    np.testing.assert_array_equal(front_end.coefficient_scale.numpy(), 1.0)
    np.testing.assert_array_equal(front_end.coefficient_mean.numpy(), 0.0)
    # Learning happened: better than chance (1/6) on the validation split.
    assert max(float(r["val_accuracy"]) for r in rows) > 0.3


@pytest.mark.slow
def test_train_0_reevaluates_and_refuses_another_model_or_label_set(trained_dir, synthetic_dir):
    train_dir, flags, _ = trained_dir
    argv = quick_argv(synthetic_dir, train_dir, extra=["--train", "0"])
    again, (report,) = pipeline.run(argv, progress=False)
    assert again["training_seconds"] == flags["training_seconds"]
    # Training a finished train_dir again trains nothing and keeps its record.
    rows = (train_dir / training.TRAINING_LOG).read_text()
    finished = training.train(training.parse_command_line(quick_argv(synthetic_dir, train_dir)))
    assert finished["training_seconds"] == flags["training_seconds"]
    assert (train_dir / training.TRAINING_LOG).read_text() == rows
    assert json.loads((train_dir / training.FLAGS_FILE).read_text())["training_seconds"] == \
        flags["training_seconds"]
    assert report["model"] == "svdf"
    with pytest.raises(training.TrainError, match="holds a svdf model"):
        pipeline.run(quick_argv(synthetic_dir, train_dir, model="tc_resnet",
                                extra=["--train", "0"]))
    with pytest.raises(training.TrainError, match="labels"):
        pipeline.run([*quick_argv(synthetic_dir, train_dir, extra=["--train", "0"])[:-1],
                      "--wanted_words", "yes,no", "svdf"])
    # Training again into the same folder with another model is refused too.
    with pytest.raises(training.TrainError, match="model_name"):
        pipeline.run(quick_argv(synthetic_dir, train_dir, model="tc_resnet"))


def kill_after_two_epochs(argv, train_dir, env=None) -> None:
    """Runs `python -m kwsnb.train ARGV` in a child process and kills it (SIGKILL: no clean-up)
    once its backup holds two finished epochs."""
    child = subprocess.Popen([sys.executable, "-m", "kwsnb.train", *argv], cwd=REPO, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metadata = train_dir / "backup" / "training_metadata.json"
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and child.poll() is None:
            if metadata.is_file() and json.loads(metadata.read_text() or "{}").get("epoch", 0) >= 2:
                break
            time.sleep(0.2)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()


@pytest.mark.slow
def test_killed_training_resumes_with_the_same_total_steps(synthetic_dir, tmp_path):
    train_dir = tmp_path / "run"
    argv = quick_argv(synthetic_dir, train_dir, steps="60,60", interval=20,
                      extra=["--normalize_features", "1"])
    # Train in a child process and kill it (SIGKILL: no clean-up) after two validations.
    kill_after_two_epochs(argv, train_dir)
    assert not (train_dir / training.LAST_WEIGHTS).exists(), "finished before it was killed"
    done = json.loads((train_dir / "backup" / "training_metadata.json").read_text())["epoch"]
    assert 2 <= done < 6

    flags = training.train(training.parse_command_line(argv))
    with (train_dir / training.TRAINING_LOG).open() as f:
        rows = list(csv.DictReader(f))
    epochs = [int(r["epoch"]) for r in rows]
    # Every epoch of 20 steps exactly once (a killed epoch may leave no row), ending at 120.
    assert sorted(set(epochs)) == list(range(6)) and epochs[-1] == 5
    assert len(epochs) == len(set(epochs))
    # The second stage's learning rate was in force at the end: the schedule resumed too.
    assert float(rows[-1]["learning_rate"]) == pytest.approx(0.0005)
    assert flags["labels"][2:] == WORDS.split(",")
    model, _ = training.load_trained_model(train_dir, training.LAST_WEIGHTS)  # the final weights load
    # The front end's normalization, set before the killed run, came back with the backup.
    from kwsnb.tflite import export as exporting

    front_end = streaming.mfcc_of(streaming.front_end_layer(model))
    assert front_end.coefficient_scale.numpy()[0] < 0.5
    assert np.abs(front_end.coefficient_mean.numpy()).max() > 1.0


# --- --distribute ----------------------------------------------------------------------------

def test_distribute_errors_say_what_to_do(monkeypatch):
    from kwsnb.train import distribute

    with pytest.raises(training.TrainError, match="--distribute 'bogus': use one of"):
        distribute.strategy({"distribute": "bogus"})
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(training.TrainError, match="multiworker needs TF_CONFIG"):
        distribute.strategy({"distribute": "multiworker"})
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(training.TrainError, match="TF_CONFIG is not valid"):
        distribute.strategy({"distribute": "multiworker"})
    monkeypatch.delenv("TF_CONFIG")
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU") and len(tf.config.list_logical_devices("CPU")) == 1:
        with pytest.raises(training.TrainError, match="no GPU.*--cpu_devices 2"):
            distribute.strategy({"distribute": "mirrored"})
    with pytest.raises(training.TrainError, match="--distribute tpu: no TPU found.*Colab"):
        distribute.strategy({"distribute": "tpu"})


def test_multiworker_chief_writes_the_train_dir_and_the_others_their_own(monkeypatch):
    from kwsnb.train import distribute

    flags = {"distribute": "multiworker", "train_dir": "runs/m"}
    cluster = {"worker": ["a:1", "b:2"]}
    for task, chief, folder in ((0, True, "runs/m"), (1, False, "runs/m/workers/worker_1")):
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster,
                                                    "task": {"type": "worker", "index": task}}))
        assert distribute.is_chief(flags) is chief
        assert distribute.worker_dir(flags) == Path(folder)
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {**cluster, "chief": ["c:3"]},
                                                "task": {"type": "worker", "index": 0}}))
    assert not distribute.is_chief(flags)  # with a chief task, worker 0 is not the chief
    assert distribute.is_chief({**flags, "distribute": "none"})


# One process split into two logical CPUs (before TensorFlow starts, hence a subprocess): the
# same command line on one device and mirrored over both.
_REPLICA_SCRIPT = """
import json, sys
import numpy as np
from kwsnb import streaming
from kwsnb import train as training

argv, out = json.loads(sys.argv[1]), sys.argv[2]
results = {}
for name, extra in (("one", []), ("two", ["--distribute", "mirrored"])):
    train_dir = f"{out}/{name}"
    flags = training.train(training.parse_command_line(
        [*argv[:-1], "--train_dir", train_dir, "--cpu_devices", "2", *extra, argv[-1]]))
    model, _ = training.load_trained_model(train_dir, training.LAST_WEIGHTS)
    np.savez(f"{out}/{name}.npz", *[w.numpy() for w in model.weights])
    results[name] = flags["replicas"]
print(json.dumps(results))
"""


@pytest.mark.slow
@pytest.mark.parametrize("model, weights_atol, loss_rtol", [
    # Measured: 1.3e-7 at most after 40 Adam steps; losses equal to 1e-7.
    ("svdf", 1e-5, 1e-5),
    # BatchNormalization: synchronized, val_loss within 1e-4 (unsynchronized: 2%). Its weights
    # are not compared: biases before a BatchNormalization get a gradient of zero plus rounding
    # noise, which Adam turns into steps of +-lr.
    ("tc_resnet", None, 1e-3),
])
def test_two_mirrored_replicas_train_as_one_device(synthetic_dir, tmp_path, model, weights_atol,
                                                   loss_rtol):
    """--batch_size is the global batch: two replicas of 25 clips give the steps of one device
    with 50 (same seed, same batches and augmentation, gradients averaged)."""
    argv = quick_argv(synthetic_dir, tmp_path / "unused", model=model, steps="20,20",
                      interval=20)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", _REPLICA_SCRIPT, json.dumps(argv),
                             str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                            timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"one": 1, "two": 2}
    if weights_atol is not None:
        one, two = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
        for key in one.files:
            np.testing.assert_allclose(two[key], one[key], atol=weights_atol, err_msg=key)
    logs = {}
    for name in ("one", "two"):
        with (tmp_path / name / training.TRAINING_LOG).open() as f:
            logs[name] = list(csv.DictReader(f))
    assert len(logs["one"]) == len(logs["two"]) == 2
    for row_one, row_two in zip(logs["one"], logs["two"]):
        for key in ("loss", "val_loss", "learning_rate"):
            assert float(row_two[key]) == pytest.approx(float(row_one[key]), rel=loss_rtol), key
    saved = json.loads((tmp_path / "two" / training.FLAGS_FILE).read_text())
    assert saved["distribute"] == "mirrored" and saved["replicas"] == 2
    assert (tmp_path / "two" / training.BEST_WEIGHTS).is_file()


_WORKER_SCRIPT = """
import json, sys
from kwsnb import streaming
from kwsnb import train as training

flags = training.train(training.parse_command_line(json.loads(sys.argv[1])))
print(json.dumps({"replicas": flags["replicas"], "chief": training.is_chief(flags)}))
"""


def _free_ports(count: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_train_one_model_and_only_the_chief_writes_the_train_dir(synthetic_dir,
                                                                            tmp_path):
    """--distribute multiworker with two local processes (TF_CONFIG on localhost ports)."""
    train_dir = tmp_path / "run"
    argv = quick_argv(synthetic_dir, train_dir, steps="20,20", interval=20,
                      extra=["--distribute", "multiworker"])
    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
    workers = []
    for index in range(2):
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "PYTHONPATH": str(REPO),
               "TF_CONFIG": json.dumps({"cluster": cluster,
                                        "task": {"type": "worker", "index": index}})}
        workers.append(subprocess.Popen([sys.executable, "-c", _WORKER_SCRIPT, json.dumps(argv)],
                                        cwd=REPO, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True))
    try:
        outputs = [worker.communicate(timeout=600) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert results == [{"replicas": 2, "chief": True}, {"replicas": 2, "chief": False}]
    other = train_dir / "workers" / "worker_1"
    for folder in (train_dir, other):
        with (folder / training.TRAINING_LOG).open() as f:
            assert [int(r["epoch"]) for r in csv.DictReader(f)] == [0, 1]
    chief, _ = training.load_trained_model(train_dir, training.LAST_WEIGHTS)
    worker, _ = training.load_trained_model(other, training.LAST_WEIGHTS)
    for a, b in zip(chief.weights, worker.weights):  # one model, kept in sync
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert json.loads((train_dir / training.FLAGS_FILE).read_text())["distribute"] == "multiworker"


@pytest.mark.slow
def test_a_killed_mirrored_run_resumes_on_one_device(synthetic_dir, tmp_path):
    """The backup of a run on two replicas holds the same weights and optimizer state: it
    resumes without --distribute (or with it) and ends at the seed's step count."""
    train_dir = tmp_path / "run"
    argv = quick_argv(synthetic_dir, train_dir, steps="40,40", interval=20)
    mirrored = [*argv[:-1], "--distribute", "mirrored", "--cpu_devices", "2", argv[-1]]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "PYTHONPATH": str(REPO)}
    kill_after_two_epochs(mirrored, train_dir, env)
    assert not (train_dir / training.LAST_WEIGHTS).exists(), "finished before it was killed"
    assert json.loads((train_dir / training.FLAGS_FILE).read_text())["replicas"] == 2

    flags = training.train(training.parse_command_line(argv))  # this process: one device
    assert flags["replicas"] == 1
    with (train_dir / training.TRAINING_LOG).open() as f:
        epochs = [int(r["epoch"]) for r in csv.DictReader(f)]
    assert sorted(set(epochs)) == [0, 1, 2, 3] and len(epochs) == len(set(epochs))
    training.load_trained_model(train_dir, training.LAST_WEIGHTS)


def test_spec_augment_masks_training_features_only(real_train_dir):
    """--use_spec_augment 1: the front end masks spans of frames and coefficients of real
    speech while training; inference (and every export, built with training off) is unchanged."""
    import tensorflow as tf

    from kwsnb import data
    from kwsnb.streaming import front_end_layer

    clips = sorted(data.scan_folder(real_train_dir).words["yes"])[:8]
    audio = tf.constant(np.stack([data.load_clip(path) for path in clips]))
    flags = training.parse_command_line(["--use_spec_augment", "1", "--time_masks_number", "2",
                                         "--time_mask_max_size", "10",
                                         "--frequency_masks_number", "2",
                                         "--frequency_mask_max_size", "5", "tc_resnet"])
    model = training_loop.build_model({**flags, "model_flags": {**flags["model_flags"],
                                                                 "label_count": 9}})
    front_end = front_end_layer(model)
    plain = front_end(audio, training=True).numpy()  # no transform yet: training changes nothing
    training_loop.mask_features_while_training(model, flags)
    np.testing.assert_array_equal(front_end(audio, training=False).numpy(), plain)
    np.testing.assert_array_equal(front_end(audio).numpy(), plain)
    masked = front_end(audio, training=True).numpy()
    assert masked.shape == plain.shape == (8, 49, 30)
    zeroed = (masked == 0) & (plain != 0)
    assert zeroed.any(axis=(1, 2)).sum() >= 6  # widths are drawn from [0, max): most get masks
    # A masked frame is zero across every coefficient, a masked coefficient across every frame.
    frames, coefficients = (masked == 0).all(axis=2), (masked == 0).all(axis=1)
    assert (zeroed == (frames[:, :, None] | coefficients[:, None, :]) & (plain != 0)).all()
    assert frames.sum(axis=1).max() <= 2 * 9 and coefficients.sum(axis=1).max() <= 2 * 4
    np.testing.assert_array_equal(model(audio, training=False).numpy(),
                                  model(audio).numpy())


# --- a train_dir is new, resumable or finished; one run at a time (issue 22) ------------------

def _committed_run(tmp_path, name="tc_resnet") -> Path:
    import shutil

    models_dir = tmp_path / "models"
    shutil.copytree(REPO / "models" / name, models_dir / name)
    return models_dir


def _committed_argv(models_dir, name="tc_resnet", data_dir="../shared/data/speech_commands_lite/",
                    extra=()):
    steps, rates, flags = seed.sc_lite10_recipe()
    return seed.seed_command(name, data_dir, str(models_dir), steps, rates,
                             [*flags, *extra])


def test_a_finished_run_refuses_other_flags_and_keeps_its_flags_json(tmp_path):
    models_dir = _committed_run(tmp_path)
    train_dir = models_dir / "tc_resnet"
    before = {p.name: p.read_bytes() for p in train_dir.iterdir() if p.is_file()}
    # Its own command line (with flags that only change the evaluation) trains nothing and
    # reads no data.
    same = training.train(training.parse_command_line(
        _committed_argv(models_dir, extra=["--latency_runs", "0"])))
    assert same["training_seconds"] == json.loads(before["flags.json"])["training_seconds"]
    assert same["latency_runs"] == 0 and Path(same["train_dir"]) == train_dir
    # Other steps or another data folder: refused before any data is read, naming the flags.
    argv = _committed_argv(models_dir, data_dir=str(tmp_path / "other_data"),
                           extra=["--how_many_training_steps", "100,100"])
    with pytest.raises(training.TrainError) as refused:
        pipeline.run(argv)
    message = str(refused.value)
    assert "--how_many_training_steps '6000,2000' (now: '100,100')" in message
    assert "--data_dir" in message and "--train 0" in message and "another --train_dir" in message
    assert "delete" not in message
    assert {p.name: p.read_bytes() for p in train_dir.iterdir() if p.is_file()} == before


def test_a_train_dir_with_weights_but_no_flags_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / training.BEST_WEIGHTS).write_bytes(b"weights of something")
    with pytest.raises(training.TrainError, match="no flags.json"):
        training.train(training.parse_command_line(quick_argv(tmp_path / "no_data",
                                                              tmp_path / "run")))


def test_an_unreadable_flags_json_is_named(tmp_path):
    models_dir = _committed_run(tmp_path)
    flags_file = models_dir / "tc_resnet" / training.FLAGS_FILE
    flags_file.write_text('{"model_name": "tc_res')  # cut by a kill
    with pytest.raises(training.TrainError, match=str(flags_file)):
        training.finished_run(flags_file.parent)
    with pytest.raises(training.TrainError, match=str(flags_file)):
        pipeline.run(_committed_argv(models_dir, extra=["--train", "0"]))


def test_a_second_training_into_a_train_dir_in_use_stops_with_a_clear_message(synthetic_dir,
                                                                               tmp_path):
    train_dir = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from kwsnb.train import state\n"
         f"with state.locked({str(train_dir)!r}):\n print('held', flush=True); time.sleep(300)"],
        cwd=REPO, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(training.TrainError, match=re.escape(
                f"{train_dir} is in use: training by process {holder.pid}")):
            pipeline.run(quick_argv(synthetic_dir, train_dir))
        assert not (train_dir / training.FLAGS_FILE).exists()
    finally:
        holder.kill()  # SIGKILL: no clean-up, and still no stale lock
        holder.wait()
    from kwsnb.train import state

    with state.locked(train_dir):
        pass


def test_a_log_written_twice_by_an_older_kwsnb_still_reads(tmp_path):
    # Two unlocked trainings appended a second header and rows: the run stays usable.
    models_dir = _committed_run(tmp_path)
    log = models_dir / "tc_resnet" / training.TRAINING_LOG
    log.write_text(log.read_text() + log.read_text())
    flags = training.finished_run(log.parent)
    assert flags is not None and flags["model_name"] == "tc_resnet"
    assert training_loop._best_validation_so_far(log) > 0.8


def test_a_backup_cut_by_a_kill_is_skipped_with_a_warning(tmp_path):
    # What Keras' BackupAndRestore left after a kill in its first write: a 0-byte weights file
    # and an empty metadata file (OSError / JSONDecodeError on every rerun).
    import keras

    from kwsnb.train import state

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    backup = tmp_path / state.BACKUP_DIR
    backup.mkdir()
    (backup / "latest.weights.h5").write_bytes(b"")
    (backup / state.BACKUP_STATE).write_text("")
    with pytest.warns(UserWarning, match=r"training_metadata\.json is unreadable"):
        assert state.restore_backup(model, tmp_path) == 0
    (backup / state.BACKUP_STATE).write_text('{"epoch": 2, "batch": 0}')
    initial = model.get_weights()
    with pytest.warns(UserWarning, match=r"latest\.weights\.h5.*starts again from step 0"):
        assert state.restore_backup(model, tmp_path) == 0
    for a, b in zip(model.get_weights(), initial):
        np.testing.assert_array_equal(a, b)
    # A complete backup (this kwsnb's, or BackupAndRestore's) resumes.
    state.save_backup(model, tmp_path, 3)
    assert not (backup / "latest.weights.h5").exists()
    saved = model.get_weights()
    model.layers[0].kernel.assign(np.zeros((4, 3)))
    assert state.restore_backup(model, tmp_path) == 3
    np.testing.assert_array_equal(model.get_weights()[0], saved[0])


_KILL_AT_FIRST_BACKUP = """
import os, signal, sys
import keras
from kwsnb import pipeline

original = keras.Model.save_weights

def save_weights(self, filepath, *args, **kwargs):
    if f"{os.sep}backup{os.sep}" in str(filepath):  # the first backup write: half a file, then SIGKILL
        original(self, filepath, *args, **kwargs)
        with open(filepath, "r+b") as handle:
            handle.truncate(os.path.getsize(filepath) // 2)
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, filepath, *args, **kwargs)

keras.Model.save_weights = save_weights
sys.exit(pipeline.main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_kill_during_the_first_backup_write_leaves_a_resumable_run(synthetic_dir, tmp_path):
    train_dir = tmp_path / "run"
    argv = quick_argv(synthetic_dir, train_dir, steps="20,20", interval=20)
    killed = subprocess.run([sys.executable, "-c", _KILL_AT_FIRST_BACKUP, *argv], cwd=REPO,
                            capture_output=True, timeout=600,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert killed.returncode == -signal.SIGKILL
    flags = training.train(training.parse_command_line(argv))
    assert flags["labels"][2:] == WORDS.split(",")
    epochs = [int(row["epoch"]) for row in csv.DictReader(
        (train_dir / training.TRAINING_LOG).open())]
    assert epochs == [0, 1]
    assert training.finished_run(train_dir) is not None
    training.load_trained_model(train_dir, training.LAST_WEIGHTS)


def test_a_data_dir_of_other_files_is_neither_changed_nor_advised_deleted(tmp_path, real_train_dir):
    # With the default --data_url, a folder of the user's own recordings got data_setup's
    # message: "Delete it and run the command again, or ... --source" (a flag kwsnb.train lacks).
    import shutil

    mine = tmp_path / "my_recordings"
    mine.mkdir()
    shutil.copy(next((real_train_dir / "yes").iterdir()), mine / "take1.flac")
    argv = quick_argv(mine, tmp_path / "run")
    argv = argv[2:]  # the default --data_url (the official archive)
    with pytest.raises(training.TrainError) as refused:
        pipeline.run(argv)
    message = str(refused.value)
    assert f"--data_dir {mine}" in message and "--data_url ''" in message
    assert "elete" not in message and "--source" not in message
    assert [p.name for p in mine.iterdir()] == ["take1.flac"]


def test_a_damaged_weights_or_tflite_file_is_named_with_a_command_that_exists(tmp_path):
    models_dir = _committed_run(tmp_path)
    train_dir = models_dir / "tc_resnet"
    argv = _committed_argv(models_dir, extra=["--train", "0"])
    tflite = train_dir / "tflite_float" / "model.tflite"
    tflite.write_bytes(tflite.read_bytes()[:5000])  # cut
    with pytest.raises(training.TrainError) as refused:
        pipeline.run(argv)
    # kwsnb.train has no --reexport: the hint names the command that has it.
    assert str(tflite) in str(refused.value)
    assert f"python -m kwsnb.evaluate {train_dir} --reexport" in str(refused.value)
    weights = train_dir / training.BEST_WEIGHTS
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(training.TrainError, match=re.escape(str(weights))):
        pipeline.run(argv)


def test_sample_rate_and_clip_duration_reach_the_model(tmp_path):
    # They shaped the data's clips but not the model's input: a Keras shape traceback later.
    flags = training.parse_command_line(quick_argv(tmp_path, tmp_path / "run",
                                                   extra=["--clip_duration_ms", "1500"]))
    assert training.build_model(flags).inputs[0].shape[-1] == 24000
    argv = quick_argv(tmp_path / "no_data", tmp_path / "run", extra=["--sample_rate", "8000"])
    with pytest.raises(training.TrainError, match="mel_upper_edge_hertz.*Nyquist.*8000"):
        pipeline.run(argv)  # refused before any data is read


def test_train_command_exits_non_zero_when_a_format_failed(monkeypatch, capsys):
    """python -m kwsnb.train used to print the report and exit 0 after a failed export."""
    report = {"model": "svdf", "params": 1, "labels": ["a"], "test_set": {"name": "t", "clips": 1},
              "measurement": {"latency": "", "machine": "", "created": ""},
              "formats": {"keras": {"accuracy": 1.0, "size_bytes": 4, "latency_ms": None},
                          "tflite_int8": {"error": "the converter refused"}}}
    monkeypatch.setattr(pipeline, "run", lambda argv: ({}, [report]))
    assert pipeline.main(["svdf"]) == 1
    assert "error: tflite_int8: the converter refused" in capsys.readouterr().err
    report["formats"].pop("tflite_int8")
    assert pipeline.main(["svdf"]) == 0
