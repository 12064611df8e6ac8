"""``--distribute``: training on more than one device with ``tf.distribute``.

* ``none``: TensorFlow's default, one device (the first GPU when there is one, else the CPU).
* ``mirrored``: ``MirroredStrategy`` over every local GPU; without a GPU, over the logical CPUs
  that ``--cpu_devices N`` (N > 1) splits the CPU into (no speed-up: it is there to test the
  distributed path on a laptop or in CI).
* ``tpu``: ``TPUStrategy`` via ``TPUClusterResolver`` (Colab's TPU runtime, a Cloud TPU VM).
* ``multiworker``: ``MultiWorkerMirroredStrategy``, several machines, each started with the
  same command line and its own ``TF_CONFIG`` (cluster and task). The chief (task ``chief``,
  else ``worker`` 0) writes ``--train_dir`` and evaluates; the other workers keep their
  (identical) checkpoints in ``--train_dir/workers/<task>``. Keras 3's fit needs two
  work-arounds there (``keras_fit_fixes``).

What stays the same: ``--batch_size`` is the global batch, split evenly across the replicas
(each computes its share, gradients are averaged over the whole batch), so a step, the step
counts and the learning rates mean what they mean on one device. BatchNormalization layers
compute their batch statistics over the global batch too (``synchronized``), as one device
would. The training batches are the same ones in the same order (the data set's order does not
depend on how many iterators read it; see ``kwsnb.data``), so two replicas train as one device
to float rounding. Checkpoints (best weights, the resumable backup) hold the same weights and a
killed run resumes with any ``--distribute``.

Tested on CPUs only: mirrored over two logical CPUs (one process) and multiworker with two local
processes; the GPU and TPU paths are the same Keras calls over other devices.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from kwsnb.train.flags import TrainError

CHOICES = ("none", "mirrored", "tpu", "multiworker")

_strategies: dict[tuple, Any] = {}  # one per process and kind: TPUs and collectives start once


def check_choice(kind: str) -> str:
    kind = (kind or "none").strip().lower()
    if kind not in CHOICES:
        raise TrainError(f"--distribute {kind!r}: use one of {', '.join(CHOICES)}")
    return kind


def configure_cpu_devices(count: int) -> None:
    """Splits the CPU into ``count`` logical devices (``--cpu_devices``). Must run before
    TensorFlow starts its devices: ``python -m kwsnb.train`` does it first thing."""
    import tensorflow as tf

    if count <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == count:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        raise TrainError(
            f"--cpu_devices {count}: TensorFlow has already started with {have} CPU device(s) in "
            "this process; the CPU can only be split before it starts. Use a fresh process "
            "(`python -m kwsnb.train ...`, or restart the kernel and train first)") from None


def strategy(flags: dict[str, Any]):
    """The ``tf.distribute.Strategy`` of ``--distribute`` (None for ``none``); a TrainError
    naming the flag and the way out when the hardware it asks for is not there."""
    kind = check_choice(flags.get("distribute"))
    cpu_devices = int(flags.get("cpu_devices") or 0)
    if cpu_devices < 0:
        raise TrainError("--cpu_devices must be 0 (do not split the CPU) or a count of devices")
    configure_cpu_devices(cpu_devices)
    if kind == "none":
        return None
    key = (kind, cpu_devices, os.environ.get("TF_CONFIG"))
    if key not in _strategies:
        _strategies[key] = {"mirrored": _mirrored, "tpu": _tpu,
                            "multiworker": _multiworker}[kind](cpu_devices)
    return _strategies[key]


def _mirrored(cpu_devices: int):
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    cpus = tf.config.list_logical_devices("CPU")
    if len(cpus) > 1:
        return tf.distribute.MirroredStrategy([d.name for d in cpus])
    raise TrainError(
        "--distribute mirrored: TensorFlow sees no GPU here (check `nvidia-smi` and that the "
        "tensorflow[and-cuda] package is installed). Drop --distribute to train on the CPU, or "
        "add --cpu_devices 2 to mirror over two logical CPU devices (a test of the distributed "
        "path, not a speed-up)")


def _tpu(cpu_devices: int):
    import tensorflow as tf

    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TrainError(
            f"--distribute tpu: no TPU found ({first_line}). On Colab choose Runtime > Change "
            "runtime type > TPU; on Cloud set TPU_NAME; or use --distribute mirrored (GPUs) or "
            "drop --distribute") from None
    return tf.distribute.TPUStrategy(resolver)


def _multiworker(cpu_devices: int):
    import tensorflow as tf

    task = task_of_tf_config()
    if task is None:
        raise TrainError(
            "--distribute multiworker needs TF_CONFIG: start the same command on every machine "
            "with TF_CONFIG='{\"cluster\": {\"worker\": [\"host1:port\", \"host2:port\"]}, "
            "\"task\": {\"type\": \"worker\", \"index\": I}}' (I = 0, 1, ... per machine); "
            "on one machine use --distribute mirrored")
    return tf.distribute.MultiWorkerMirroredStrategy()


def task_of_tf_config() -> tuple[str, int] | None:
    """(task type, index) from ``TF_CONFIG``, None when it is unset; TrainError when it is not
    the JSON TensorFlow reads."""
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return None
    try:
        config = json.loads(text)
        task = config["task"]
        if not config.get("cluster"):
            raise KeyError("cluster")
        return str(task["type"]), int(task.get("index", 0))
    except (ValueError, KeyError, TypeError) as error:
        raise TrainError(f"--distribute multiworker: TF_CONFIG is not valid ({error!r}); it must "
                         "be JSON with a 'cluster' and a 'task' {'type': ..., 'index': ...}") from None


def is_chief(flags: dict[str, Any]) -> bool:
    """Whether this process writes ``--train_dir`` and evaluates: always, but for the
    non-chief workers of ``--distribute multiworker``."""
    if check_choice(flags.get("distribute")) != "multiworker":
        return True
    task = task_of_tf_config()
    if task is None:
        return True
    config = json.loads(os.environ["TF_CONFIG"])
    kind, index = task
    has_chief = bool(config["cluster"].get("chief"))
    return kind == "chief" or (not has_chief and kind == "worker" and index == 0)


def worker_dir(flags: dict[str, Any]) -> Path:
    """Where this process keeps its checkpoints and logs: ``--train_dir`` for the chief,
    ``--train_dir/workers/<type>_<index>`` for the other workers of a multi-worker run (they
    hold the same weights; only the chief's are the result)."""
    train_dir = Path(flags["train_dir"])
    if is_chief(flags):
        return train_dir
    kind, index = task_of_tf_config()
    return train_dir / "workers" / f"{kind}_{index}"


def synchronize_batch_norm(model) -> int:
    """Batch statistics over the global batch, not each replica's share (``synchronized``
    BatchNormalization; read when the layer is called). Returns how many layers it set."""
    import keras

    count = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
            count += 1
    return count


def dataset_for(dataset, strategy_):
    """A training/validation ``tf.data.Dataset`` ready for ``strategy_``: Keras' fit then
    splits each global batch across the replicas (``experimental_distribute_dataset``). Across
    workers the batches are sharded by data (the clips live in memory, not in files)."""
    if strategy_ is None:
        return dataset
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


@contextlib.contextmanager
def keras_fit_fixes(model, strategy_, dataset):
    """Works around two faults of Keras 3's ``fit`` under ``MultiWorkerMirroredStrategy``
    (tensorflow/tensorflow#72388); other strategies are left alone.

    * To learn the input shapes fit takes a batch and averages it across the replicas
      (``strategy.reduce``), which fails in eager mode ("Attempt to convert a value
      (PerReplica...)"): the model, loss and metrics are built from the data set's element
      spec instead and fit's peek is skipped (it would only build what is built).
    * It averages each step's logs with ``strategy.reduce("MEAN", v, axis=0)``, which fails
      for scalars ("Invalid reduction dimension 0 for input with 0 dimensions"): inside this
      context the scalar logs are averaged across workers with ``axis=None``.
    """
    import tensorflow as tf

    if not isinstance(strategy_, tf.distribute.MultiWorkerMirroredStrategy):
        yield
        return
    from keras.src.backend.tensorflow import trainer as keras_trainer
    from keras.src import tree

    with strategy_.scope():
        model._symbolic_build(data_batch=dataset.element_spec)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    original = keras_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and strategy is strategy_:
            return tree.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None)
                if isinstance(v, tf.distribute.DistributedValues) or not v.shape.rank else v,
                values)
        return original(values, strategy, reduction)

    keras_trainer.reduce_per_replica = reduce_per_replica
    try:
        yield
    finally:
        keras_trainer.reduce_per_replica = original
