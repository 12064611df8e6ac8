"""TFLite export: float, dynamic-range and int8 models, non-stream and streaming, builtin ops only.

Formats (one folder per format under the export directory, each with ``model.tflite`` and a
``metadata.json`` describing inputs, outputs, quantization and labels):

=============================  ==========================================================================
tflite_float                   raw audio [1, 16000] -> logits, float32 throughout
tflite_dynamic                 the seed's "quant": dynamic-range quantization (int8 weights, float
                               activations), front end kept float
tflite_int8                    body int8 (weights and activations, calibrated on training clips), front
                               end float, float32 input and output
tflite_features_int8           the body alone for microcontrollers: int8 MFCCs [1, frames, dct] in, int8
                               logits out; ``metadata.json`` holds the input scale and zero point
tflite_stream_external_float   one 320-sample packet per call, states as extra inputs and outputs
tflite_stream_external_int8    the same with the body (and its states) int8, front end float
tflite_stream_internal_float   one packet per call, states in resource variables inside the model
=============================  ==========================================================================

**Keeping the front end float.** Quantizing the MFCC front end to int8 ruins the features (a probe
fell from 99.7% to ~75%): the power spectrum spans many orders of magnitude and the log needs them
all. Dynamic-range quantization hurts as well (measured here: 80% -> 68% on a small model), because
the hybrid FULLY_CONNECTED kernels of the mel and DCT matmuls quantize their *input* (the spectrum)
to 8 bits on the fly. So every quantized format keeps the front end float:

- int8 (non-stream and stream): post-training integer quantization through TensorFlow's
  ``tf.lite.experimental.QuantizationDebugger`` with a denylist. The debugger calibrates the model
  once and quantizes it with ``denylisted_nodes``; denylisted ops keep float kernels and the
  converter inserts QUANTIZE/DEQUANTIZE at the border. This is the one public API that quantizes
  selectively. The denylist is found on the float TFLite graph, not by op type (the body has
  FULLY_CONNECTED ops too): every op reachable from the audio inputs without passing the MFCC
  layer's outputs (framing, the streaming audio ring buffer, FFT, mel, log, DCT).
- dynamic range: the converter has no denylist for it, so the dynamic-range model gets its
  front-end weights restored to the float model's values (a flatbuffer edit by tensor name); a
  FULLY_CONNECTED with float weights runs the float kernel.

Both are checked after conversion: no front-end op may read or write an int8 tensor, and only
builtin ops may appear (the converter is restricted to TFLITE_BUILTINS; the flatbuffer is checked
again for custom or Flex ops).

**Streaming models** come from ``kwsnb.streaming`` (or are passed in). An external-state model
takes ``[audio, <layer>_state, ...]`` and returns ``{"logits": ..., "<layer>_state": new state}``
(TFLite signatures keep the names); ``metadata.json`` records the packet input, the logits
output, the state pairs and which state is the front end's audio ring buffer. The int8 version
quantizes the body's states inside the model (float state I/O, QUANTIZE/DEQUANTIZE at the
border), calibrated on states the float model produces on training clips. LiteRT's
``Interpreter.reset_all_variables()`` does not reset resource variables (measured), so an
internal-state model is reset by making a new interpreter (about 0.5 ms).
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import sys
import tempfile
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

FORMAT_DESCRIPTIONS = {
    "tflite_float": "float32, raw audio in",
    "tflite_dynamic": "dynamic-range quantization (int8 weights), front end float",
    "tflite_int8": "int8 body, float front end, float I/O",
    "tflite_features_int8": "body only, int8 MFCC in, int8 logits out (microcontrollers)",
    "tflite_stream_external_float": "streaming, states as inputs/outputs, float32",
    "tflite_stream_external_int8": "streaming, states as inputs/outputs, int8 body, float front end",
    "tflite_stream_internal_float": "streaming, states in resource variables, float32",
}
NON_STREAM_FORMATS = ("tflite_float", "tflite_dynamic", "tflite_int8", "tflite_features_int8")
STREAM_FORMATS = ("tflite_stream_external_float", "tflite_stream_external_int8",
                  "tflite_stream_internal_float")
FORMATS = NON_STREAM_FORMATS + STREAM_FORMATS
# Formats calibrated on representative training clips.
INT8_FORMATS = ("tflite_int8", "tflite_features_int8", "tflite_stream_external_int8")

MODEL_FILE = "model.tflite"
METADATA_FILE = "metadata.json"
# Calibration clips: a few hundred cover the activation ranges; more only slows the export.
REPRESENTATIVE_CLIPS = 300
# Streaming calibration: every packet of this many clips (50 packets each), so the states are
# seen at every fill level, from all-zero to a full second of audio.
REPRESENTATIVE_STREAM_CLIPS = 30
TFLITE_IDENTIFIER = b"TFL3"
# Int8 weights with one scale per output channel (True) or one per tensor (False). Per channel
# stores a float32 scale and an int64 zero point for every channel of every weight tensor and
# again for its int32 bias: 24 bytes a channel, 8-20 KB of a 30k-parameter model (a layer with
# 32 inputs per channel carries 32 bytes of weights and 24 of parameters). Per tensor measured no
# accuracy loss on SC-lite-9 (all eight models, features-in int8, full test set), so it is the
# default.
INT8_PER_CHANNEL = False


class ExportError(RuntimeError):
    """A model that cannot be exported as asked, or a .tflite file that cannot be read."""


# ---------------------------------------------------------------------------------------------
# Reading and checking TFLite flatbuffers
# ---------------------------------------------------------------------------------------------

def _schema():
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _opcode_names() -> dict[int, str]:
    schema = _schema()
    return {value: name for name, value in vars(schema.BuiltinOperator).items()
            if not name.startswith("_")}


def operator_names(model_content: bytes) -> list[str]:
    """The distinct operators of a TFLite model, all subgraphs, sorted; a custom op (Flex ops
    included) appears as ``CUSTOM:<its code>``."""
    schema = _schema()
    model = schema.Model.GetRootAs(model_content, 0)
    names = _opcode_names()
    found = set()
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            found.add(f"CUSTOM:{(code.CustomCode() or b'').decode()}")
        else:
            found.add(names.get(builtin, f"BUILTIN_{builtin}"))
    return sorted(found)


def check_builtin_ops(model_content: bytes, what: str = "model") -> list[str]:
    """Returns the model's operators; raises ExportError if any is a custom or Flex op."""
    names = operator_names(model_content)
    custom = [n.split(":", 1)[1] for n in names if n.startswith("CUSTOM:")]
    if custom:
        raise ExportError(f"{what} needs non-builtin TFLite ops {custom}; kwsnb exports only "
                          "models made of builtin ops (the front end must be kwsnb.features.MFCC)")
    return names


def read_tflite(path: str | Path) -> bytes:
    """Reads a .tflite file and checks that LiteRT can load it; ExportError names the file."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path} not found: export the model first "
                          "(kwsnb.export.export, or `python -m kwsnb.evaluate TRAIN_DIR --reexport`)")
    content = path.read_bytes()
    if len(content) < 8 or content[4:8] != TFLITE_IDENTIFIER:
        raise ExportError(f"{path} is not a TFLite model (no TFL3 flatbuffer identifier; "
                          f"{len(content)} bytes): re-export it (--reexport) or delete it")
    try:
        interpreter = make_interpreter(content)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:
        raise ExportError(f"{path} is corrupt: LiteRT cannot load it ({error}). "
                          "Re-export it (--reexport) or delete it") from None
    return content


def make_interpreter(model_content: bytes, num_threads: int = 1):
    """A LiteRT interpreter (one thread by default: latencies are reported single-threaded)."""
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=model_content, num_threads=num_threads)


def describe_io(model_content: bytes) -> dict:
    """Inputs and outputs of the model's serving signature (Keras names and order): name,
    shape, dtype and (scale, zero point) for quantized tensors."""
    interpreter = make_interpreter(model_content)
    runner_inputs, runner_outputs = signature_details(interpreter)

    def describe(details):
        scale, zero_point = details["quantization"]
        entry = {"shape": [int(d) for d in details["shape"]],
                 "dtype": np.dtype(details["dtype"]).name}
        if scale:
            entry["scale"] = float(scale)
            entry["zero_point"] = int(zero_point)
        return entry

    return {"inputs": {name: describe(d) for name, d in runner_inputs.items()},
            "outputs": {name: describe(d) for name, d in runner_outputs.items()}}


def signature_details(interpreter) -> tuple[dict, dict]:
    """Input and output details keyed by signature name. Tensor order in a multi-input TFLite
    model is not the Keras order, names are reliable: inputs keep the Keras input names, outputs
    the keys of a dict output or ``output_0, output_1, ...`` (Keras order) for a list."""
    signatures = interpreter.get_signature_list()
    if len(signatures) != 1:
        raise ExportError(f"expected one signature in the TFLite model, found {list(signatures)}")
    key = next(iter(signatures))
    runner = interpreter.get_signature_runner(key)
    inputs, outputs = runner.get_input_details(), runner.get_output_details()
    output_order = sorted(outputs, key=lambda n: int(n.rsplit("_", 1)[-1])
                          if re.fullmatch(r"output_\d+", n) else -1)
    return ({n: inputs[n] for n in signatures[key]["inputs"]},
            {n: outputs[n] for n in output_order})


# ---------------------------------------------------------------------------------------------
# Front end: which layer, which TFLite ops
# ---------------------------------------------------------------------------------------------

def front_end_layer(model):
    """The layer of ``model`` that computes the MFCCs: a kwsnb.features.MFCC, or the layer
    wrapping one (kwsnb.layers.Stream keeps it as ``cell``). Exactly one is expected."""
    from kwsnb.features import MFCC

    def holds_mfcc(layer, depth=0):
        cell = getattr(layer, "cell", None)
        return isinstance(layer, MFCC) or (cell is not None and depth < 4
                                           and holds_mfcc(cell, depth + 1))

    found = [layer for layer in model.layers if holds_mfcc(layer)]
    if len(found) != 1:
        raise ExportError(f"model {model.name!r} has {len(found)} MFCC front-end layers; export "
                          "needs exactly one (raw audio in, kwsnb.features.MFCC inside)")
    return found[0]


def mfcc_of(layer):
    """The kwsnb.features.MFCC inside a front-end layer (its flags, packet size, ...)."""
    while getattr(layer, "cell", None) is not None:
        layer = layer.cell
    return layer


def split_front_end(model):
    """(front_end, body): two Keras models sharing the model's layers; front_end maps raw audio
    to MFCC features, body maps features to the model's output."""
    import keras

    mfcc = front_end_layer(model)
    try:
        # One input as a tensor, not a one-element list: callers pass an array.
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        front_end = keras.Model(inputs, mfcc.output, name=f"{model.name}_front_end")
        body = keras.Model(mfcc.output, model.outputs[0], name=f"{model.name}_body")
    except (AttributeError, ValueError) as error:
        raise ExportError(f"cannot split model {model.name!r} at its MFCC layer ({error}); the "
                          "features-in format needs a functional Keras model") from None
    return front_end, body


def _scope_pattern(layer_name: str) -> re.Pattern:
    # Keras 3 names TF ops "<model>_1/<layer>_1/<op>": the layer name, maybe with a _N suffix.
    return re.compile(rf"(^|/){re.escape(layer_name)}(_\d+)?/")


def front_end_tensor_names(model_content: bytes, front_end_name: str = "mfcc") -> set[str]:
    """Output tensor names of every front-end op of a float TFLite model (main subgraph).

    Front end = the ops of the MFCC layer's name scope plus every op reachable from the audio
    inputs that feed them without passing the MFCC outputs: framing, a streaming model's audio
    ring buffer and its new-state slice. Found on the graph, not by op type, because the body
    has the same op types (FULLY_CONNECTED, RESHAPE, ...).
    """
    return _front_end_region(model_content, front_end_name)[0]


def front_end_constant_bytes(model_content: bytes, front_end_name: str = "mfcc") -> int:
    """Bytes of the constants the front end reads (window, mel filterbank, DCT matrices)."""
    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(model_content, 0)
    graph = model.subgraphs[0]
    names = front_end_tensor_names(model_content, front_end_name)
    buffers = set()
    for op in graph.operators:
        if any((graph.tensors[o].name or b"").decode() in names for o in op.outputs):
            buffers.update(graph.tensors[i].buffer for i in op.inputs if i >= 0)
    return int(sum(len(model.buffers[b].data) for b in buffers
                   if b < len(model.buffers) and model.buffers[b].data is not None))


def strip_tensor_names(model_content: bytes, front_end_name: str | None = "mfcc") -> bytes:
    """Drops the tensor names: a quarter of a small quantized model, the converter naming each
    tensor after every op fused into it. The front end's tensors become
    ``<front_end_name>/<index>``, which ``front_end_*`` still find (front_end_name=None: no
    front end, every name dropped). Signatures keep their own names, so the inputs and outputs
    are still found by name. Run it last: ``check_front_end_float`` and the dynamic-range
    weight restore match tensors across models by their converter names."""
    import flatbuffers

    schema = _schema()
    keep = set() if front_end_name is None else front_end_tensor_names(model_content,
                                                                       front_end_name)
    model = schema.ModelT.InitFromPackedBuf(model_content, 0)
    for index, tensor in enumerate(model.subgraphs[0].tensors):
        tensor.name = (f"{front_end_name}/{index}".encode()
                       if tensor.name is not None and tensor.name.decode() in keep else None)
    for graph in model.subgraphs[1:]:
        for tensor in graph.tensors:
            tensor.name = None
    builder = flatbuffers.Builder(len(model_content))
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def front_end_inputs(model_content: bytes, front_end_name: str = "mfcc") -> list[str]:
    """Signature names of the inputs the front end reads: the audio packet and, in an
    external-state streaming model, the audio ring buffer's state."""
    indices = _front_end_region(model_content, front_end_name)[1]
    inputs, _ = signature_details(make_interpreter(model_content))
    return [name for name, details in inputs.items() if details["index"] in indices]


def _front_end_region(model_content: bytes, front_end_name: str) -> tuple[set[str], set[int]]:
    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(model_content, 0)
    graph = model.subgraphs[0]
    names = [(t.name or b"").decode() for t in graph.tensors]  # strip_tensor_names: None
    pattern = _scope_pattern(front_end_name)
    scoped = [any(pattern.search(part) for part in names[o].split(";"))
              for o in range(len(names))]
    operators = [(list(op.inputs), list(op.outputs)) for op in graph.operators]
    producer = {out: i for i, (_, outs) in enumerate(operators) for out in outs}
    consumers = defaultdict(list)
    for i, (ins, _) in enumerate(operators):
        for t in ins:
            if t >= 0:
                consumers[t].append(i)

    seed_ops = {i for i, (_, outs) in enumerate(operators) if any(scoped[o] for o in outs)}
    if not seed_ops:
        raise ExportError(f"no TFLite op belongs to the front end {front_end_name!r}: cannot "
                          "keep it float (was the layer renamed by the converter?)")
    graph_outputs = set(graph.outputs)
    boundary = {o for i in seed_ops for o in operators[i][1]
                if o in graph_outputs or any(c not in seed_ops for c in consumers[o])}

    # Graph inputs the front end reads (walking back from its ops).
    audio_inputs, stack, seen = set(), list(seed_ops), set()
    graph_inputs = set(graph.inputs)
    while stack:
        i = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        for t in operators[i][0]:
            if t in graph_inputs:
                audio_inputs.add(t)
            elif t in producer:
                stack.append(producer[t])

    # Everything computed from those inputs up to the front end's outputs.
    region, frontier = set(), list(audio_inputs)
    while frontier:
        t = frontier.pop()
        for i in consumers[t]:
            if i in region:
                continue
            region.add(i)
            frontier.extend(o for o in operators[i][1] if o not in boundary)
    region |= seed_ops
    return {names[o] for i in region for o in operators[i][1]}, audio_inputs


def check_front_end_float(model_content: bytes, front_end_names: set[str], what: str) -> None:
    """Raises ExportError if any front-end op of a quantized model reads or writes int8/int16."""
    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(model_content, 0)
    graph = model.subgraphs[0]
    quantized = {schema.TensorType.INT8, schema.TensorType.UINT8, schema.TensorType.INT16}
    bad = set()
    for op in graph.operators:
        outputs = [graph.tensors[o] for o in op.outputs]
        if not any((t.name or b"").decode() in front_end_names for t in outputs):
            continue
        for t in [graph.tensors[i] for i in op.inputs if i >= 0] + outputs:
            if t.type in quantized:
                bad.add((t.name or b"").decode())
    if bad:
        raise ExportError(f"{what}: the front end was quantized ({sorted(bad)[:5]}); "
                          "it must stay float to keep the MFCCs accurate")


# ---------------------------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------------------------

def _converter(model, saved_model_dir: Path):
    import tensorflow as tf

    # model.export + from_saved_model: quiet (verbose=False), and the path that keeps resource
    # variables for internal-state streaming.
    # Batch size 1 (what every TFLite user of these models feeds): with a static batch the
    # converter folds the shape arithmetic of Dense on 3-D tensors (SHAPE, GATHER, REDUCE_PROD,
    # PACK, CONCATENATION per layer) and batch norms into the layers before them.
    import keras

    signature = [keras.tree.map_structure(
        lambda t: tf.TensorSpec((1, *t.shape[1:]) if t.shape and t.shape[0] is None
                                else t.shape, t.dtype, name=t.name), model.input)]
    model.export(str(saved_model_dir), format="tf_saved_model", verbose=False,
                 input_signature=signature)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter


def _convert(model, what: str, configure: Callable | None = None,
             quantize: Callable | None = None) -> bytes:
    """Converts ``model``; ``configure(converter)`` sets options; ``quantize(converter)``, if
    given, returns the model bytes instead of ``converter.convert()``."""
    with tempfile.TemporaryDirectory(prefix="kwsnb_export_") as tmp:
        try:
            with _quiet():
                converter = _converter(model, Path(tmp) / "saved_model")
                if configure:
                    configure(converter)
                content = quantize(converter) if quantize else converter.convert()
        except Exception as error:  # ConverterError and friends: explain, don't dump MLIR
            raise ExportError(f"converting {what} failed: {_converter_message(error)}") from error
    check_builtin_ops(content, what)
    return content


@contextlib.contextmanager
def _quiet():
    """Hides the converter's chatter: hundreds of C++ log lines, calibration prints and
    deprecation warnings per model. Failures still surface as exceptions with the converter's
    message (see _converter_message)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        # In Jupyter, sys.stdout/stderr are the kernel's streams, not file descriptors 1 and 2,
        # and TensorFlow's Python logger ("Assets written to ...") writes through them.
        tf_logger = logging.getLogger("tensorflow")
        level = tf_logger.level
        tf_logger.setLevel(logging.ERROR)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                yield
        finally:
            tf_logger.setLevel(level)
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _converter_message(error: Exception) -> str:
    text = str(error)
    unsupported = sorted(set(re.findall(r"'(tf\.\w+)' op is neither a custom op nor a flex op", text)))
    if unsupported:
        return (f"TensorFlow ops {unsupported} have no builtin TFLite kernel (kwsnb exports "
                "builtin ops only; use layers that convert, see docs)")
    lines = [line for line in text.splitlines() if "error" in line.lower()]
    return (lines[0] if lines else text.splitlines()[0] if text else repr(error))[:500]


def convert_float(model, what: str = "float model") -> bytes:
    """Float32 TFLite model of any Keras model (non-stream or external-state streaming)."""
    return _convert(model, what)


def convert_dynamic(model, float_content: bytes | None = None) -> bytes:
    """Dynamic-range quantization (the seed's "quant"), front end kept float."""
    import tensorflow as tf

    float_content = float_content or convert_float(model)
    front_end = front_end_tensor_names(float_content, front_end_layer(model).name)

    def configure(converter):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

    content = _convert(model, "dynamic-range model", configure)
    content = _restore_float_weights(content, float_content, front_end)
    check_front_end_float(content, front_end, "dynamic-range model")
    return content


def _restore_float_weights(content: bytes, float_content: bytes, op_outputs: set[str]) -> bytes:
    """Gives the ops writing ``op_outputs`` their float weights back (same tensor names in the
    float model), so they run float kernels instead of hybrid int8 ones."""
    import flatbuffers

    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(content, 0)
    reference = schema.ModelT.InitFromPackedBuf(float_content, 0)
    reference_graph = reference.subgraphs[0]
    float_tensors = {t.name.decode(): t for t in reference_graph.tensors}
    graph = model.subgraphs[0]
    buffer_users = defaultdict(int)
    for t in graph.tensors:
        buffer_users[t.buffer] += 1
    changed = 0
    for op in graph.operators:
        if not any(graph.tensors[o].name.decode() in op_outputs for o in op.outputs):
            continue
        for i in op.inputs:
            tensor = graph.tensors[i] if i >= 0 else None
            if tensor is None or tensor.type not in (schema.TensorType.INT8, schema.TensorType.INT16):
                continue  # float weights, or integer shapes and indices
            data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
            if data is None or len(data) == 0:
                continue  # not a constant
            source = float_tensors.get(tensor.name.decode())
            if source is None or source.type != schema.TensorType.FLOAT32:
                raise ExportError(f"dynamic-range model: no float weights named "
                                  f"{tensor.name.decode()!r} to restore in the front end")
            new_buffer = schema.BufferT()
            new_buffer.data = np.array(reference.buffers[source.buffer].data, dtype=np.uint8)
            if buffer_users[tensor.buffer] == 1:
                model.buffers[tensor.buffer] = new_buffer
            else:
                model.buffers.append(new_buffer)
                tensor.buffer = len(model.buffers) - 1
            tensor.type = schema.TensorType.FLOAT32
            tensor.quantization = None
            changed += 1
    if not changed:
        return content
    builder = flatbuffers.Builder(len(content) * 2)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def _quantize_with_float_front_end(model, float_content: bytes, representative: Callable,
                                   what: str) -> bytes:
    """Post-training int8 of everything but the front end (see the module docstring)."""
    import tensorflow as tf

    front_end = front_end_tensor_names(float_content, front_end_layer(model).name)

    def configure(converter):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter._experimental_disable_per_channel = not INT8_PER_CHANNEL  # the debugger reads it

    def quantize(converter):
        options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=sorted(front_end))
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=representative, debug_options=options)
        return debugger.get_nondebug_quantized_model()

    content = _convert(model, what, configure, quantize)
    check_front_end_float(content, front_end, what)
    return content


def convert_int8(model, representative_audio: np.ndarray, float_content: bytes | None = None) -> bytes:
    """Int8 body, float front end, float32 audio in and logits out."""
    audio = _as_audio(representative_audio)
    float_content = float_content or convert_float(model)

    def representative():
        for clip in audio:
            yield [clip[np.newaxis]]

    return _quantize_with_float_front_end(model, float_content, representative, "int8 model")


def convert_features_int8(model, representative_audio: np.ndarray) -> bytes:
    """Full-int8 body for microcontrollers: int8 MFCC [1, frames, dct] in, int8 logits out.
    Calibrated on the front end's features of ``representative_audio``."""
    import tensorflow as tf

    front_end, body = split_front_end(model)
    features = predict_batches(front_end, _as_audio(representative_audio))

    def representative():
        for feature in features:
            yield [feature[np.newaxis]]

    def configure(converter):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        converter._experimental_disable_per_channel = not INT8_PER_CHANNEL

    return _convert(body, "features-in int8 model", configure)


def stream_state_pairs(stream_model) -> list[tuple[str, str]]:
    """(state input, new-state output) signature names of an external-state streaming model.

    kwsnb models (``kwsnb.layers.ModelBuilder``) return a dict ``{"logits": ..., "<layer>_state":
    new state, ...}`` keyed by the state inputs' names, which TFLite signatures keep. A model
    returning a list pairs ``inputs[1:]`` with ``outputs[1:]`` in order (``output_<k>``).
    """
    inputs = list(stream_model.inputs)
    states = inputs[1:]
    structure = stream_model.output
    if not states:
        raise ExportError(f"{stream_model.name!r} is not an external-state streaming model: it has "
                          "one input (expected the packet and one input per state)")
    if isinstance(structure, dict):
        outputs = {name: structure.get(name) for name in map(_input_name, states)}
        missing = [name for name, tensor in outputs.items() if tensor is None]
        if missing:
            raise ExportError(f"{stream_model.name!r}: no output for state input(s) {missing} "
                              f"(outputs: {sorted(structure)})")
        pairs = [(name, name) for name in outputs]
        new_states = list(outputs.values())
    else:
        new_states = list(stream_model.outputs)[1:]
        if len(new_states) != len(states):
            raise ExportError(f"{stream_model.name!r}: {len(states)} state inputs but "
                              f"{len(new_states)} state outputs")
        pairs = [(_input_name(state), f"output_{k}") for k, state in enumerate(states, start=1)]
    for (name, _), state, new_state in zip(pairs, states, new_states):
        if tuple(state.shape) != tuple(new_state.shape):
            raise ExportError(f"{stream_model.name!r}: state {name!r} goes in with shape "
                              f"{tuple(state.shape)} and comes out with {tuple(new_state.shape)}")
    return pairs


def stream_logits_output(stream_model) -> str:
    """Signature name of an external-state model's logits output."""
    from kwsnb.layers import LOGITS

    structure = stream_model.output
    if isinstance(structure, dict):
        if LOGITS not in structure:
            raise ExportError(f"{stream_model.name!r} has no {LOGITS!r} output "
                              f"(outputs: {sorted(structure)})")
        return LOGITS
    return "output_0"


def _input_name(tensor) -> str:
    return tensor.name.split(":")[0]


def stream_packets(audio: np.ndarray, packet_samples: int) -> np.ndarray:
    """[clips, samples] -> [clips, packets, packet_samples] (a partial last packet is dropped)."""
    audio = _as_audio(audio)
    count = audio.shape[1] // packet_samples
    return audio[:, :count * packet_samples].reshape(len(audio), count, packet_samples)


def external_state_inputs(float_content: bytes, pairs: Sequence[tuple[str, str]],
                          audio: np.ndarray) -> list[dict[str, np.ndarray]]:
    """Runs the float external-state model over every packet of each clip (states zeroed per
    clip) and returns the input dicts it saw: representative data with realistic states."""
    interpreter = make_interpreter(float_content)
    interpreter.allocate_tensors()
    inputs, outputs = signature_details(interpreter)
    packet_name = next(n for n in inputs if n not in dict(pairs))
    packet_samples = int(inputs[packet_name]["shape"][-1])
    samples = []
    for clip in stream_packets(audio, packet_samples):
        states = {name: np.zeros(inputs[name]["shape"], np.float32) for name, _ in pairs}
        for packet in clip:
            feed = {packet_name: packet[np.newaxis].astype(np.float32), **states}
            samples.append(feed)
            for name, value in feed.items():
                interpreter.set_tensor(inputs[name]["index"], value)
            interpreter.invoke()
            states = {name: interpreter.get_tensor(outputs[out]["index"]) for name, out in pairs}
    return samples


def convert_stream_external_int8(stream_model, representative_audio: np.ndarray,
                                 float_content: bytes | None = None,
                                 clips: int = REPRESENTATIVE_STREAM_CLIPS) -> bytes:
    """External-state streaming model with int8 body and states (float I/O), front end float.
    Calibrated on every packet of ``clips`` clips, with the states the float model produces."""
    pairs = stream_state_pairs(stream_model)
    float_content = float_content or convert_float(stream_model, "external-state float model")
    samples = external_state_inputs(float_content, pairs, _as_audio(representative_audio)[:clips])

    def representative():
        yield from samples

    return _quantize_with_float_front_end(stream_model, float_content, representative,
                                          "external-state int8 model")


def convert_stream_internal(stream_model) -> bytes:
    """Internal-state streaming model, float32, states in TFLite resource variables."""

    def configure(converter):
        converter.experimental_enable_resource_variables = True

    return _convert(stream_model, "internal-state float model", configure)


def predict_batches(model, inputs: np.ndarray, batch_size: int = 100) -> np.ndarray:
    """``model``'s outputs for ``inputs``, batch by batch, eagerly: ``model.predict`` would
    trace a new function per model, and TensorFlow warns about retracing after a few."""
    outputs = [np.asarray(model(inputs[start:start + batch_size], training=False))
               for start in range(0, len(inputs), batch_size)]
    return np.concatenate(outputs)


def _as_audio(audio) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 2 or len(audio) == 0:
        raise ExportError(f"expected audio clips shaped [clips, samples], got {audio.shape}")
    return audio


def representative_subset(audio: np.ndarray, count: int = REPRESENTATIVE_CLIPS,
                          seed: int = 0) -> np.ndarray:
    """``count`` clips drawn at random (reproducibly) from ``audio``."""
    audio = _as_audio(audio)
    if len(audio) <= count:
        return audio
    return audio[np.sort(np.random.default_rng(seed).choice(len(audio), count, replace=False))]


# ---------------------------------------------------------------------------------------------
# Export to folders
# ---------------------------------------------------------------------------------------------

def streaming_models(model) -> dict:
    """{"external": ..., "internal": ...} streaming Keras models with the model's weights."""
    from kwsnb import streaming

    return {"external": streaming.to_stream_external(model),
            "internal": streaming.to_stream_internal(model)}


def export(model, out_dir: str | Path, representative_audio: np.ndarray | None,
           labels: Sequence[str] | None = None, formats: Iterable[str] = FORMATS,
           stream_models: Mapping | None = None, progress: bool = False) -> dict[str, Path]:
    """Writes ``out_dir/<format>/model.tflite`` and ``metadata.json`` for each format.

    ``model``: the non-stream Keras model (raw audio [B, samples] -> logits).
    ``representative_audio``: training clips [N, samples] for int8 calibration (a random
    ``REPRESENTATIVE_CLIPS`` of them are used); None when no int8 format is asked for. ``stream_models``: {"external", "internal"}
    streaming Keras models; built with ``kwsnb.streaming`` when a stream format needs them.
    Returns {format: path of model.tflite}.
    """
    formats = list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ExportError(f"unknown format(s) {unknown}; choose from {list(FORMATS)}")
    out_dir = Path(out_dir)
    if representative_audio is None:
        needs_data = [f for f in formats if f in INT8_FORMATS]
        if needs_data:
            raise ExportError(f"{', '.join(needs_data)} need representative training clips "
                              "for calibration (representative_audio)")
        audio = None
    else:
        audio = representative_subset(representative_audio)
    front_end_layer(model)  # fails early, with a clear message, for a model without one
    stream_models = dict(stream_models or {})
    needs_stream = [f for f in formats if f in STREAM_FORMATS]
    if needs_stream and not {"external", "internal"} <= stream_models.keys():
        stream_models = {**streaming_models(model), **stream_models}

    cache: dict[str, bytes] = {}

    def float_content():
        if "tflite_float" not in cache:
            cache["tflite_float"] = convert_float(model)
        return cache["tflite_float"]

    def external_float():
        if "tflite_stream_external_float" not in cache:
            cache["tflite_stream_external_float"] = convert_float(
                stream_models["external"], "external-state float model")
        return cache["tflite_stream_external_float"]

    builders = {
        "tflite_float": float_content,
        "tflite_dynamic": lambda: convert_dynamic(model, float_content()),
        "tflite_int8": lambda: convert_int8(model, audio, float_content()),
        "tflite_features_int8": lambda: convert_features_int8(model, audio),
        "tflite_stream_external_float": external_float,
        "tflite_stream_external_int8": lambda: convert_stream_external_int8(
            stream_models["external"], audio, external_float()),
        "tflite_stream_internal_float": lambda: convert_stream_internal(stream_models["internal"]),
    }
    paths = {}
    iterator = formats
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(formats, desc="export", unit="format")
    for name in iterator:
        content = builders[name]()
        content = strip_tensor_names(content, None if name == "tflite_features_int8"
                                     else front_end_layer(model).name)
        folder = out_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / MODEL_FILE
        path.write_bytes(content)
        graph_model = (stream_models["external" if "external" in name else "internal"]
                       if name in STREAM_FORMATS else model)
        metadata = _metadata(name, content, graph_model, labels)
        (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
        paths[name] = path
    return paths


def _metadata(name: str, content: bytes, graph_model, labels: Sequence[str] | None) -> dict:
    """What a user of the .tflite file needs: I/O, quantization, states, labels, front end."""
    mfcc = mfcc_of(front_end_layer(graph_model))
    metadata = {"format": name, "description": FORMAT_DESCRIPTIONS[name],
                "labels": list(labels) if labels is not None else None,
                "size_bytes": len(content), "operators": operator_names(content),
                **describe_io(content), "feature_flags": dict(mfcc.flags)}
    if name == "tflite_features_int8":
        metadata["front_end_bytes"] = 0
        (spec,) = metadata["inputs"].values()
        # A device computes the seed's MFCCs itself: it needs the front end's normalization
        # as well as the input's quantization.
        metadata["input_quantization"] = {
            "scale": spec["scale"], "zero_point": spec["zero_point"],
            "coefficient_mean": [float(v) for v in mfcc.coefficient_mean.numpy()],
            "coefficient_scale": [float(v) for v in mfcc.coefficient_scale.numpy()],
            "how": "int8 = clip(round((mfcc - coefficient_mean) * coefficient_scale / scale) "
                   "+ zero_point, -128, 127)"}
        return metadata
    front_end_name = front_end_layer(graph_model).name
    metadata["front_end_bytes"] = front_end_constant_bytes(content, front_end_name)
    if name in STREAM_FORMATS:
        metadata["packet_samples"] = int(mfcc.packet_samples)
    if name.startswith("tflite_stream_external"):
        pairs = stream_state_pairs(graph_model)
        metadata["packet_input"] = _input_name(graph_model.inputs[0])
        metadata["logits_output"] = stream_logits_output(graph_model)
        metadata["states"] = [{"input": i, "output": o} for i, o in pairs]
        # The audio ring buffer (priming it with a clip's first packet makes a stream from
        # reset see exactly the non-stream frames; see kwsnb.evaluate).
        audio_states = [n for n in front_end_inputs(content, front_end_name) if n in dict(pairs)]
        metadata["audio_state"] = audio_states[0] if len(audio_states) == 1 else None
    return metadata
