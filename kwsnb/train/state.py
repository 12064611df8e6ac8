"""What a train_dir holds and who may write it: the one place that decides whether a run is new,
resumable or finished, whether a command line may continue it, and whether another process is
using it (a lock). Every file a kill can interrupt is written atomically (a temporary file in the
same folder, then a rename), so a kill at any moment leaves the previous complete file.
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import socket
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no flock; training runs unlocked there
    fcntl = None

from kwsnb.data.files import atomic_write, remove_partial_writes, write_text_atomic
from kwsnb.train.flags import (_BASE_FLAGS, BEST_WEIGHTS, FLAGS_FILE, LAST_WEIGHTS,
                               TRAINING_LOG, Stages, TrainError, load_flags,
                               resolved_model_flags, validation_interval)


LOCK_FILE = "train.lock"


BACKUP_DIR = "backup"


# The backup's state: {"epoch": finished epochs, "weights": file in BACKUP_DIR}. The name is
# Keras BackupAndRestore's, whose backups (latest.weights.h5, no "weights" key) still resume.
BACKUP_STATE = "training_metadata.json"


# Flags that do not change the weights: a finished or killed run accepts other values of them.
NOT_PROVENANCE = {"train", "train_dir", "test_dir", "test_exclude", "stream_clips",
                  "latency_runs", "verbosity", "save_step_interval", "data_url", "distribute",
                  "cpu_devices",
                  # written by training itself
                  "labels", "params", "training_seconds", "replicas", "model_flags"}


PATH_FLAGS = ("data_dir", "extra_unknown_dir")


# ---------------------------------------------------------------------------------------------
# Atomic writes
# ---------------------------------------------------------------------------------------------

def save_weights_atomic(model, path: str | Path) -> None:
    atomic_write(path, lambda temporary: model.save_weights(temporary))


# ---------------------------------------------------------------------------------------------
# The lock
# ---------------------------------------------------------------------------------------------

_held: dict[Path, int] = {}  # train_dirs this process has locked -> nesting depth


@contextlib.contextmanager
def locked(train_dir: str | Path, doing: str = "training"):
    """Holds ``train_dir/train.lock`` (``fcntl.flock``: the system releases it when the process
    dies, so a killed run never leaves a stale lock). A second process gets a TrainError
    naming the holder; the same process may nest (training, then evaluating)."""
    train_dir = Path(train_dir)
    train_dir.mkdir(parents=True, exist_ok=True)
    key = train_dir.resolve()
    if key in _held or fcntl is None:
        _held[key] = _held.get(key, 0) + 1
        try:
            yield
        finally:
            _held[key] -= 1
            if not _held[key]:
                del _held[key]
        return
    handle = open(train_dir / LOCK_FILE, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise TrainError(f"{train_dir} is in use: {holder}. Wait for it to finish, or give "
                         "another --train_dir (two processes writing one train_dir would "
                         "overwrite each other's weights, logs and reports)") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{doing} by process {os.getpid()} on {socket.gethostname()} since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handle.flush()
        _held[key] = 1
        yield
    finally:
        _held.pop(key, None)
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def check_not_in_use(train_dir: str | Path, doing: str) -> None:
    """TrainError when another process holds ``train_dir``'s lock (a training still writing
    it). Creates nothing: reading a finished run leaves its folder as it is."""
    train_dir = Path(train_dir)
    if fcntl is None or not (train_dir / LOCK_FILE).is_file() or train_dir.resolve() in _held:
        return
    with open(train_dir / LOCK_FILE) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            holder = handle.read().strip() or "another process"
            raise TrainError(f"{train_dir} is in use: {holder}. Wait for it to finish before "
                             f"{doing}") from None
        fcntl.flock(handle, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------------------------
# The training log
# ---------------------------------------------------------------------------------------------

def log_rows(log_path: Path) -> dict[int, dict[str, str]]:
    """{epoch: row} of the training log. Rows that do not parse (a line cut by a kill, a
    header written twice by an older kwsnb) are skipped, not fatal; a later row of an epoch
    replaces an earlier one."""
    if not log_path.is_file():
        return {}
    rows = {}
    with log_path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                epoch = int(row["epoch"])
                float(row.get("val_accuracy") or 0)
            except (KeyError, TypeError, ValueError):
                continue
            rows[epoch] = row
    return rows


def drop_log_rows_from(log_path: Path, epoch: int) -> None:
    """Keeps the log's rows of epochs before ``epoch`` (rewritten atomically): epochs a killed
    run logged but did not back up, which the resumed run trains again, and damaged lines."""
    if not log_path.is_file():
        return
    with log_path.open(newline="") as handle:
        fields = csv.DictReader(handle).fieldnames
    kept = [row for e, row in sorted(log_rows(log_path).items()) if e < epoch]
    if not fields:
        return

    def write(temporary: Path) -> None:
        with temporary.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(kept)

    atomic_write(log_path, write)


# ---------------------------------------------------------------------------------------------
# New, resumable or finished
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunState:
    """``kind``: "new" (no flags.json), "resumable" (started, not all epochs done) or
    "finished"; ``saved``: its flags.json (None when new)."""

    kind: str
    saved: dict[str, Any] | None = None


def run_state(train_dir: str | Path) -> RunState:
    """New, resumable or finished: finished when flags.json, the best weights and one
    training-log row per validation interval are there (the committed models/ have no last
    weights or backup). TrainError for a flags.json that cannot be read."""
    train_dir = Path(train_dir)
    if not (train_dir / FLAGS_FILE).is_file():
        return RunState("new")
    saved = load_flags(train_dir)
    if not (train_dir / BEST_WEIGHTS).is_file():
        return RunState("resumable", saved)
    try:
        stages = Stages.from_flags(saved["how_many_training_steps"], saved["learning_rate"])
        interval = validation_interval(stages.total, int(saved["eval_step_interval"]))
    except (KeyError, TypeError, ValueError, TrainError):
        return RunState("resumable", saved)
    epochs = log_rows(train_dir / TRAINING_LOG)
    finished = all(epoch in epochs for epoch in range(stages.total // interval))
    return RunState("finished" if finished else "resumable", saved)


def _same_path(a: Any, b: Any) -> bool:
    if a == b or not a or not b:
        return a == b
    return Path(str(a)).expanduser().resolve() == Path(str(b)).expanduser().resolve()


def differing_flags(saved: dict[str, Any], flags: dict[str, Any]) -> list[str]:
    """The weight-changing flags whose values differ: ``--name saved (now: new)`` each. A flag
    an older flags.json lacks counts as its default."""
    def as_saved(value):  # flags.json turns tuples into lists
        return json.loads(json.dumps(value, default=str))

    differing = []
    for name in sorted(set(flags) - NOT_PROVENANCE - {"model_name"}):
        default = _BASE_FLAGS[name][1] if name in _BASE_FLAGS else None
        old, new = saved.get(name, default), flags[name]
        same = _same_path(old, new) if name in PATH_FLAGS else as_saved(old) == as_saved(new)
        if not same:
            differing.append(f"--{name} {old!r} (now: {new!r})")
    old_model = {k: v for k, v in resolved_model_flags(saved).items() if k != "label_count"}
    new_model = {k: v for k, v in resolved_model_flags(flags).items() if k != "label_count"}
    for name in sorted(set(old_model) | set(new_model)):
        if as_saved(old_model.get(name)) != as_saved(new_model.get(name)) \
                and not any(d.startswith(f"--{name} ") for d in differing):
            differing.append(f"--{name} {old_model.get(name)!r} (now: {new_model.get(name)!r})")
    return differing


def check_continuation(train_dir: Path, state: RunState, flags: dict[str, Any]) -> None:
    """A command line may finish or re-evaluate the run in ``train_dir`` only with the flags it
    was trained with (flags.json must keep describing the weights); TrainError otherwise, naming
    the differing flags and how to go on. Also refuses a folder with weights but no flags.json."""
    if state.kind == "new":
        strays = [name for name in (BEST_WEIGHTS, LAST_WEIGHTS, BACKUP_DIR)
                  if (train_dir / name).exists()]
        if strays:
            raise TrainError(f"{train_dir} holds {', '.join(strays)} but no {FLAGS_FILE}, so "
                             "nothing says what they were trained with: give another "
                             "--train_dir")
        return
    saved = state.saved
    if saved.get("model_name") != flags["model_name"]:
        raise TrainError(f"{train_dir} holds a model_name of {saved.get('model_name')!r}, not "
                         f"{flags['model_name']!r}: give another --train_dir (or the model it "
                         "was trained with)")
    if "labels" in flags and saved.get("labels") != flags["labels"]:
        raise TrainError(f"{train_dir} holds a labels of {saved.get('labels')!r}, not "
                         f"{flags['labels']!r}: give another --train_dir (or the "
                         "--wanted_words it was trained with)")
    differing = differing_flags(saved, flags)
    if differing:
        what = "a finished run" if state.kind == "finished" else "a started (killed) run"
        model = [d for d in differing if d.split()[0][2:] in resolved_model_flags(flags)
                 or d.split()[0][2:] in resolved_model_flags(saved)]
        raise TrainError(
            f"{train_dir} holds {what} trained with other {'model ' if model else ''}flags: "
            f"{'; '.join(differing)}. Its {FLAGS_FILE} describes its weights, so it is left as "
            "it is. To evaluate that run, add --train 0 (or run `python -m kwsnb.evaluate "
            f"{train_dir}`); to train with these flags, give another --train_dir")


# ---------------------------------------------------------------------------------------------
# The backup of a run in progress
# ---------------------------------------------------------------------------------------------

def save_backup(model, train_dir: Path, epochs_done: int) -> None:
    """Backs up the weights and optimizer after ``epochs_done`` epochs: the weights file first
    (its own name per epoch), then the state naming it, each atomically; older backups go
    last. A kill at any moment leaves a complete backup (this one or the previous)."""
    backup = train_dir / BACKUP_DIR
    backup.mkdir(parents=True, exist_ok=True)
    weights = f"epoch_{epochs_done}.weights.h5"
    save_weights_atomic(model, backup / weights)
    write_text_atomic(backup / BACKUP_STATE, json.dumps({"epoch": epochs_done,
                                                         "weights": weights}))
    for old in backup.glob("epoch_*.weights.h5"):
        if old.name != weights:
            old.unlink(missing_ok=True)
    for legacy in ("latest.weights.h5", "latest.weights.h5.bkp", BACKUP_STATE + ".bkp"):
        (backup / legacy).unlink(missing_ok=True)  # Keras BackupAndRestore's, now superseded
    remove_partial_writes(backup)  # a run killed while writing; the train_dir lock: one writer


def restore_backup(model, train_dir: Path) -> int:
    """Loads the newest backup that reads (weights and optimizer state) and returns its number
    of finished epochs; 0, with a warning naming the files, when none does. Keras
    BackupAndRestore's files (an older kwsnb) are read too, a 0-byte or cut one skipped."""
    backup = train_dir / BACKUP_DIR
    candidates = []
    for state_name, default_weights in ((BACKUP_STATE, "latest.weights.h5"),
                                        (BACKUP_STATE + ".bkp", "latest.weights.h5.bkp")):
        path = backup / state_name
        if not path.is_file():
            continue
        try:
            state = json.loads(path.read_text())
            candidates.append((int(state["epoch"]), backup / state.get("weights", default_weights)))
        except (OSError, ValueError, KeyError, TypeError) as error:
            warnings.warn(f"{path} is unreadable ({error or 'empty'}); ignoring it",
                          stacklevel=2)
    if not candidates:
        return 0
    variables = list(model.variables) + list(model.optimizer.variables)
    initial = [v.numpy() for v in variables]
    failed = []
    for epoch, weights in candidates:
        try:
            model.load_weights(weights)
            return epoch
        except Exception as error:  # a cut or empty h5 file: h5py's OSError, Keras' ValueError
            failed.append(f"{weights} ({str(error).splitlines()[0] if str(error) else error!r})")
    for variable, value in zip(variables, initial):  # a half-loaded file must not linger
        variable.assign(value)
    warnings.warn(f"no backup of {train_dir} could be read ({'; '.join(failed)}): training "
                  "starts again from step 0", stacklevel=2)
    return 0
