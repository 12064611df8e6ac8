"""Keras -> TFLite conversion primitives shared by every format: the converter call and its
errors, batch-1 signatures, where the front end sits in a TFLite graph, streaming state pairs,
and the inputs calibration sees.

``kwsnb.tflite.quantize`` (one int8 calibration for every int8 format) and ``kwsnb.tflite.export`` (the
formats, written to folders) build on it; it needs only ``kwsnb.tflite.runtime``, ``kwsnb.tflite.flatbuffer``
and ``kwsnb.layers``.
"""
from __future__ import annotations

import contextlib
import io
import logging
import re
import tempfile
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from kwsnb.streaming import StreamRunner
from kwsnb.tflite.flatbuffer import Graph, pack_shared
from kwsnb.tflite.runtime import (ExportError, TFLiteModel, as_audio, captured_output, check_builtin_ops,
                                  make_interpreter, signature_details, tflite_schema)


# Calibration clips: a few hundred cover the activation ranges; more only slows the export.
# Int8 weights with one scale per output channel (True) or one per tensor (False). Per channel
# stores a float32 scale and an int64 zero point for every channel of every weight tensor and
# again for its int32 bias: 24 bytes a channel, 8-20 KB of a 30k-parameter model (a layer with
# 32 inputs per channel carries 32 bytes of weights and 24 of parameters). Per tensor measured no
# accuracy loss on SC-lite-9 (all eight models, features-in int8, full test set), so it is the
# default.
INT8_PER_CHANNEL = False
REPRESENTATIVE_CLIPS = 300


# Streaming calibration: every packet of this many clips (50 packets each), so the states are
# seen at every fill level, from all-zero to a full second of audio.
REPRESENTATIVE_STREAM_CLIPS = 30


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
    schema = tflite_schema()
    model = Graph.read(model_content).model
    graph = model.subgraphs[0]
    names = front_end_tensor_names(model_content, front_end_name)
    buffers = set()
    # Constants the front end reads through a DEQUANTIZE (int16_front_end_constants).
    dequantized = {int(op.outputs[0]): int(op.inputs[0]) for op in graph.operators
                   if len(op.inputs) == 1 and len(op.outputs) == 1
                   and max(model.operatorCodes[op.opcodeIndex].builtinCode,
                           model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)
                   == schema.BuiltinOperator.DEQUANTIZE}
    for op in graph.operators:
        if any((graph.tensors[o].name or b"").decode() in names for o in op.outputs):
            buffers.update(graph.tensors[dequantized.get(i, i)].buffer
                           for i in op.inputs if i >= 0)
    return int(sum(len(model.buffers[b].data) for b in buffers
                   if b < len(model.buffers) and model.buffers[b].data is not None))


def front_end_inputs(model_content: bytes, front_end_name: str = "mfcc") -> list[str]:
    """Signature names of the inputs the front end reads: the audio packet and, in an
    external-state streaming model, the audio ring buffer's state."""
    indices = _front_end_region(model_content, front_end_name)[1]
    inputs, _ = signature_details(make_interpreter(model_content))
    return [name for name, details in inputs.items() if details["index"] in indices]


def _front_end_region(model_content: bytes, front_end_name: str) -> tuple[set[str], set[int]]:
    model = Graph.read(model_content).model
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
    schema = tflite_schema()
    model = Graph.read(model_content).model
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


def batch_one_signature(model, names: Mapping[str, str] | None = None) -> list:
    """An export signature of ``model``'s inputs with batch size 1 (``names`` renames inputs).

    ``model.export`` relaxes the batch dimension to None, and a graph with an unknown batch
    computes shapes at run time (SHAPE, GATHER, REDUCE_PROD, PACK ahead of the RESHAPEs of Dense
    on [batch, time, channels] and of Flatten), ops TensorFlow Lite Micro does not have. With
    batch 1 every shape is a constant; the numbers are the same."""
    import keras

    names = dict(names or {})
    specs = [keras.InputSpec(shape=(1,) + tuple(x.shape[1:]), dtype=x.dtype,
                             name=names.get(tensor_name(x), tensor_name(x)))
             for x in model.inputs]
    return [specs[0] if len(specs) == 1 else specs]


def _converter(model, saved_model_dir: Path, input_signature: list | None = None):
    import tensorflow as tf

    # model.export + from_saved_model: quiet (verbose=False), and the path that keeps resource
    # variables for internal-state streaming.
    # Batch size 1 (what every TFLite user of these models feeds): with a static batch the
    # converter folds the shape arithmetic of Dense on 3-D tensors (SHAPE, GATHER, REDUCE_PROD,
    # PACK, CONCATENATION per layer, which TensorFlow Lite Micro lacks) and batch norms into the
    # layers before them.
    model.export(str(saved_model_dir), format="tf_saved_model", verbose=False,
                 input_signature=input_signature or batch_one_signature(model))
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter


def convert_model(model, what: str, configure: Callable | None = None,
             quantize: Callable | None = None, input_signature: list | None = None) -> bytes:
    """Converts ``model``; ``configure(converter)`` sets options; ``quantize(converter)``, if
    given, returns the model bytes instead of ``converter.convert()``; ``input_signature``
    (e.g. ``batch_one_signature(model)``) replaces ``model.export``'s batch-None signature."""
    with tempfile.TemporaryDirectory(prefix="kwsnb_export_") as tmp:
        try:
            with quiet_converter():
                converter = _converter(model, Path(tmp) / "saved_model", input_signature)
                if configure:
                    configure(converter)
                content = quantize(converter) if quantize else converter.convert()
        except ExportError:
            raise
        except Exception as error:  # ConverterError and friends: explain, don't dump MLIR
            raise ExportError(f"converting {what} failed: {converter_message(error)}") from error
    check_builtin_ops(content, what)
    return content


@contextlib.contextmanager
def quiet_converter():
    """Hides the converter's chatter: hundreds of C++ log lines, calibration prints and
    deprecation warnings per model. Failures still surface as exceptions with the converter's
    message (see converter_message)."""
    with captured_output(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
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


def converter_message(error: Exception) -> str:
    text = str(error)
    unsupported = sorted(set(re.findall(r"'(tf\.\w+)' op is neither a custom op nor a flex op", text)))
    if unsupported:
        return (f"TensorFlow ops {unsupported} have no builtin TFLite kernel (kwsnb exports "
                "builtin ops only; use layers that convert, see docs)")
    lines = [line for line in text.splitlines() if "error" in line.lower()]
    return (lines[0] if lines else text.splitlines()[0] if text else repr(error))[:500]


def convert_float(model, what: str = "float model") -> bytes:
    """Float32 TFLite model of any Keras model (non-stream or external-state streaming)."""
    return convert_model(model, what)


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
        outputs = {name: structure.get(name) for name in map(tensor_name, states)}
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
        pairs = [(tensor_name(state), f"output_{k}") for k, state in enumerate(states, start=1)]
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


def tensor_name(tensor) -> str:
    return tensor.name.split(":")[0]


def external_state_inputs(float_content: bytes, pairs: Sequence[tuple[str, str]],
                          audio: np.ndarray) -> list[dict[str, np.ndarray]]:
    """Runs the float external-state model over every packet of each clip (states zeroed per
    clip) and returns the input dicts it saw: representative data with realistic states."""
    model = TFLiteModel(float_content)
    packet_name = next(n for n in model.inputs if n not in dict(pairs))
    runner = StreamRunner(model, packet_input=packet_name, state_pairs=pairs)
    samples = []
    for clip in as_audio(audio):
        runner.reset()
        for packet in clip[:len(clip) // runner.packet_samples * runner.packet_samples].reshape(
                -1, runner.packet_samples):
            samples.append({packet_name: packet[np.newaxis].astype(np.float32), **runner.states})
            runner.step(packet)
    return samples


def representative_audio(dataset, count: int = REPRESENTATIVE_CLIPS) -> np.ndarray:
    """``count`` unaugmented training clips of a ``kwsnb.data.SpeechCommands`` in a seeded
    random order: what calibrates every int8 format."""
    batch = dataset.dataset("training", batch_size=count, augment=False, shuffle=True,
                            repeat=False, seed=0)
    audio, _ = next(iter(batch))
    return audio.numpy()


def predict_batches(model, inputs: np.ndarray, batch_size: int = 100) -> np.ndarray:
    """``model``'s outputs for ``inputs``, batch by batch, eagerly: ``model.predict`` would
    trace a new function per model, and TensorFlow warns about retracing after a few."""
    outputs = [np.asarray(model(inputs[start:start + batch_size], training=False))
               for start in range(0, len(inputs), batch_size)]
    return np.concatenate(outputs)


def representative_subset(audio: np.ndarray, count: int = REPRESENTATIVE_CLIPS,
                          seed: int = 0) -> np.ndarray:
    """``count`` clips drawn at random (reproducibly) from ``audio``."""
    audio = as_audio(audio)
    if len(audio) <= count:
        return audio
    return audio[np.sort(np.random.default_rng(seed).choice(len(audio), count, replace=False))]


def strip_tensor_names(model_content: bytes, front_end_name: str | None = "mfcc") -> bytes:
    """Drops the tensor names: a quarter of a small quantized model, the converter naming each
    tensor after every op fused into it. The front end's tensors become
    ``<front_end_name>/<index>``, which ``front_end_*`` still find (front_end_name=None: no
    front end, every name dropped). Signatures keep their own names, so the inputs and outputs
    are still found by name. Run it last: ``check_front_end_float``, the dynamic-range weight
    restore and ``kwsnb.tflite.quantize`` match tensors across models by their converter names."""
    keep = set() if front_end_name is None else front_end_tensor_names(model_content,
                                                                       front_end_name)
    g = Graph.read(model_content)
    for index, tensor in enumerate(g.graph.tensors):
        tensor.name = (f"{front_end_name}/{index}".encode()
                       if tensor.name is not None and tensor.name.decode() in keep else None)
    for graph in g.model.subgraphs[1:]:
        for tensor in graph.tensors:
            tensor.name = None
    return g.pack()


# ---------------------------------------------------------------------------------------------
# Smaller flatbuffers: the same graph without what no interpreter reads
# ---------------------------------------------------------------------------------------------

def compact_flatbuffer(model_content: bytes) -> bytes:
    """The same model in fewer bytes (1-7 KB of a 40-80 KB kwsnb model; see
    ``benchmarks/tflite_size_breakdown.py``). Nothing an interpreter computes changes:

    * tensors no op, graph input/output or signature reads (float weights that
      ``kwsnb.tflite.quantize.repair_float_islands`` replaced: 5.8 KB in tc_resnet's int8 stream)
      and buffers no tensor uses are dropped;
    * every tensor without constant data (activations) points at the empty buffer 0, as the
      schema allows, instead of an empty buffer of its own;
    * the converter's metadata (CONVERSION_METADATA, min_runtime_version) and description go;
    * empty quantization tables and ``has_rank`` of tensors with a non-empty shape (implied)
      are left out;
    * equal vectors (shapes, scales, zero points, operator inputs) and equal quantization tables
      are written once and shared: flatbuffer offsets may point at the same object, as
      ``flatc``'s shared strings do.

    Constants' bytes, alignment and tensor order of the remaining tensors are kept. LiteRT and
    TensorFlow Lite Micro read the result (tests/test_export.py, tests/test_micro.py)."""
    model = Graph.read(model_content).model

    def has_data(index: int) -> bool:
        data = model.buffers[index].data if 0 <= index < len(model.buffers) else None
        return data is not None and len(data) > 0

    signatures = defaultdict(list)
    for signature in model.signatureDefs or []:
        signatures[signature.subgraphIndex].append(signature)
    for number, graph in enumerate(model.subgraphs):
        used = set(graph.inputs) | set(graph.outputs)
        for op in graph.operators:
            for field in (op.inputs, op.outputs, op.intermediates):
                used.update(int(i) for i in (field if field is not None else ()) if i >= 0)
        for signature in signatures[number]:
            used.update(t.tensorIndex for t in (signature.inputs or []) + (signature.outputs or []))
        kept = sorted(used)
        new_index = {old: new for new, old in enumerate(kept)}
        remap = lambda indices: (None if indices is None else np.array(  # noqa: E731
            [new_index[int(i)] if i >= 0 else int(i) for i in indices], dtype=np.int32))
        graph.tensors = [graph.tensors[i] for i in kept]
        graph.inputs, graph.outputs = remap(graph.inputs), remap(graph.outputs)
        for op in graph.operators:
            op.inputs, op.outputs = remap(op.inputs), remap(op.outputs)
            op.intermediates = remap(op.intermediates) if op.intermediates is not None else None
        for signature in signatures[number]:
            for t in (signature.inputs or []) + (signature.outputs or []):
                t.tensorIndex = new_index[t.tensorIndex]
        for tensor in graph.tensors:
            if not tensor.isVariable and not has_data(tensor.buffer):
                tensor.buffer = 0
            q = tensor.quantization
            if q is not None and q.scale is None and q.min is None and q.max is None \
                    and q.details is None:
                tensor.quantization = None
            if tensor.shape is not None and len(tensor.shape):
                tensor.hasRank = False

    model.metadata, model.description = None, None
    buffers = [0] + sorted({t.buffer for g in model.subgraphs for t in g.tensors} - {0})
    if has_data(0):
        raise ExportError("compact_flatbuffer: buffer 0 holds data (not a TFLite flatbuffer "
                          "the converter wrote)")
    new_buffer = {old: new for new, old in enumerate(buffers)}
    model.buffers = [model.buffers[i] for i in buffers]
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            tensor.buffer = new_buffer[tensor.buffer]
    return pack_shared(model)


# The front end's mel filterbank weights (a MUL's 4-D constant, 3.9 KB float32) stored as int16
# (scale per tensor, zero point 0) and turned back into float32 by a DEQUANTIZE op, which LiteRT
# runs once per interpreter for a constant input: 1.9 KB less in every int8 raw-audio format,
# latency unchanged (tc_resnet and mobilenet int8, 15 interleaved rounds: 0.642 vs 0.645 ms per
# clip, 0.0307 vs 0.0311 ms per packet), MFCC error 2.80e-4 against 2.93e-4 (float32) on 500
# clips. Measured and not done:
# * the DCT as int16 (FULLY_CONNECTED weights, -4.8/-6.4 KB at 30/40 coefficients): its error
#   stays within 6e-5 of float32 with row-sum-preserving rounding (``_int16_rows``), but the
#   FULLY_CONNECTED then reads a computed tensor, not a constant, and runs 2-3% slower per clip;
#   ``int16_front_end_constants(..., kinds=("FULLY_CONNECTED", "MUL"))`` does it anyway;
# * the window as int16: its near-zero ends make the steps visible in quiet clips (MFCC error
#   0.6); float16 is too coarse for all three (DCT 7e-2, window 1.5).
FRONT_END_INT16_MIN_ELEMENTS = 256


def _int16_rows(values: np.ndarray, keep_row_sums: bool) -> tuple[np.ndarray, float]:
    """Symmetric int16 codes of ``values`` and their scale. With ``keep_row_sums`` the rounding
    direction of a few entries per row is flipped so that each row's codes sum to its exact sum
    (rounded): a DCT row then maps a constant log-mel vector (silence at the log floor) as the
    float row does, which plain rounding misses by up to 2e-3 (measured, 40 coefficients)."""
    values = np.asarray(values, np.float64)
    scale = float(np.float32(np.abs(values).max() / 32767.0)) or 1.0
    exact = values.reshape(values.shape[0], -1) / scale
    codes = np.round(exact)
    if keep_row_sums:
        for row, (x, q) in enumerate(zip(exact, codes)):
            missing = int(np.round(x.sum()) - q.sum())
            if missing:
                residual = x - q
                order = np.argsort(-residual if missing > 0 else residual)[:abs(missing)]
                codes[row, order] += np.sign(missing)
    return np.clip(codes, -32767, 32767).astype(np.int16).reshape(values.shape), scale


def int16_front_end_constants(model_content: bytes, front_end_names: set[str],
                              kinds: tuple[str, ...] = ("MUL",)) -> bytes:
    """The front end's mel weights (``kinds`` MUL) and, if asked, its DCT (FULLY_CONNECTED)
    as int16 + DEQUANTIZE (see ``FRONT_END_INT16_MIN_ELEMENTS``); everything else as it was.
    ``front_end_names``: output tensor names of the front-end ops (``front_end_tensor_names``).
    The DEQUANTIZE ops come first in the graph and their outputs are not front-end tensors, so
    ``check_front_end_float`` still holds; ``front_end_constant_bytes`` counts their inputs."""
    schema = tflite_schema()
    model = Graph.read(model_content).model
    graph = model.subgraphs[0]
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}

    def opname(op):
        code = model.operatorCodes[op.opcodeIndex]
        return names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "")

    dequantize_code = None
    new_ops = []
    for op in graph.operators:
        if not any((graph.tensors[o].name or b"").decode() in front_end_names for o in op.outputs):
            continue
        kind = opname(op)
        if kind not in kinds:
            continue
        if kind == "FULLY_CONNECTED":
            slots = [1]
        elif kind == "MUL":
            slots = [s for s, i in enumerate(op.inputs) if i >= 0 and graph.tensors[i].shape
                     is not None and len(graph.tensors[i].shape) == 4]
        else:
            continue
        for slot in slots:
            index = int(op.inputs[slot])
            tensor = graph.tensors[index]
            data = model.buffers[tensor.buffer].data
            if tensor.type != schema.TensorType.FLOAT32 or data is None \
                    or len(data) < 4 * FRONT_END_INT16_MIN_ELEMENTS:
                continue
            values = np.frombuffer(bytes(bytearray(data)), np.float32).reshape(tensor.shape)
            codes, scale = _int16_rows(values, keep_row_sums=kind == "FULLY_CONNECTED")
            if dequantize_code is None:
                code = schema.OperatorCodeT()
                code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.DEQUANTIZE
                code.version = 3  # int16 input
                model.operatorCodes.append(code)
                dequantize_code = len(model.operatorCodes) - 1
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(codes.tobytes(), np.uint8).copy()
            model.buffers.append(buffer)
            packed = schema.TensorT()
            packed.shape, packed.type = np.array(tensor.shape, np.int32), schema.TensorType.INT16
            packed.buffer = len(model.buffers) - 1
            packed.quantization = schema.QuantizationParametersT()
            packed.quantization.scale = np.array([scale], np.float32)
            packed.quantization.zeroPoint = np.array([0], np.int64)
            graph.tensors.append(packed)
            # The float constant becomes the DEQUANTIZE's output (same tensor, no data), nameless
            # so that no front-end scope claims the DEQUANTIZE (check_front_end_float).
            tensor.buffer, tensor.name = 0, None
            dequantize = schema.OperatorT()
            dequantize.opcodeIndex = dequantize_code
            dequantize.inputs = np.array([len(graph.tensors) - 1], np.int32)
            dequantize.outputs = np.array([index], np.int32)
            new_ops.append(dequantize)
    if not new_ops:
        return model_content
    graph.operators = new_ops + list(graph.operators)
    return pack_shared(model)
