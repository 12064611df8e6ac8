"""The stack kwsnb runs on: the TensorFlow releases it is tested with, the few converter
internals it needs (each checked before use, failing with the TensorFlow version), and the line
a notebook prints about its kernel and training device.

Needs only ``kwsnb.tflite.runtime`` (for ExportError).
"""
from __future__ import annotations

import sys

from kwsnb.tflite.runtime import ExportError


# CI runs every format on both (tests/test_colab_replica.py runs Colab's 2.20 stack).
TESTED_TENSORFLOW = ("2.20", "2.21")
# TensorFlow has no public way to quantize a calibrated model with ranges of one's own
# (kwsnb.tflite.quantize shares one calibration between formats) or to ask for per-tensor int8
# weights; these are the names its own QuantizationDebugger uses for both. They are checked
# before use, and every int8 export is verified after conversion (kwsnb.tflite.quantize), so a
# release that changes them stops the export with its version instead of exporting
# something else.
PRIVATE_CONVERTER_OPTIONS = ("_experimental_calibrate_only", "_experimental_disable_per_channel")


def tensorflow_version() -> str:
    import tensorflow as tf

    return tf.__version__


def converter_mismatch(what: str) -> str:
    """``what`` went wrong in a way a TensorFlow release can cause: the message says which
    release this is and what to do."""
    return (f"{what}. kwsnb is tested with TensorFlow {' and '.join(TESTED_TENSORFLOW)}, this is "
            f"{tensorflow_version()}: install a tested release "
            "(pip install 'tensorflow>=2.20,<2.22') or report the version")


def set_private_option(converter, name: str, value) -> None:
    """Sets one of ``PRIVATE_CONVERTER_OPTIONS``, failing loudly where the converter lacks it
    (setting a missing attribute would succeed and change nothing)."""
    if name not in PRIVATE_CONVERTER_OPTIONS:
        raise ValueError(f"{name!r} is not one of kwsnb's known converter options")
    if not hasattr(converter, name):
        raise ExportError(converter_mismatch(f"the TFLite converter has no option {name!r}"))
    setattr(converter, name, value)


def mlir_quantize():
    """TensorFlow's ``mlir_quantize`` (what QuantizationDebugger quantizes a calibrated model
    with), checked for the arguments kwsnb passes."""
    import inspect

    try:
        from tensorflow.lite.python.convert import mlir_quantize as function
    except ImportError as error:
        raise ExportError(converter_mismatch(
            "tensorflow.lite.python.convert.mlir_quantize is gone")) from error
    needed = {"disable_per_channel", "fully_quantize", "input_data_type", "output_data_type",
              "denylisted_nodes"}
    missing = needed - set(inspect.signature(function).parameters)
    if missing:
        raise ExportError(converter_mismatch(f"mlir_quantize lacks {sorted(missing)}"))
    return function


COLAB_GPU_HINT = ("on Colab: Runtime > Change runtime type > a GPU (T4 is free), then run the "
                  "notebook again from the top")


def runtime_summary() -> str:
    """One line: the TensorFlow, Keras and Python this kernel runs, and the device training
    uses (the GPUs' names, or the CPU and how to get a GPU on Colab)."""
    import platform

    import keras
    import tensorflow as tf

    line = (f"TensorFlow {tf.__version__}, Keras {keras.__version__}, "
            f"Python {platform.python_version()}")
    if ".".join(tf.__version__.split(".")[:2]) not in TESTED_TENSORFLOW:
        line += f" (kwsnb is tested with TensorFlow {' and '.join(TESTED_TENSORFLOW)})"
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
                 for gpu in gpus]
        return f"{line}. Training on {len(gpus)} GPU(s): {', '.join(names)}."
    hint = f"; {COLAB_GPU_HINT}" if "google.colab" in sys.modules else ""
    return (f"{line}. Training on the CPU: no GPU visible (the quick preset takes minutes, the "
            f"full recipe hours{hint}).")
