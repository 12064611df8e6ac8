"""One int8 quantization per trained model, shared by every int8 format.

Post-training int8 calibrates each graph on its own: the non-stream model sees whole clips, the
external-state streaming model one packet per call (and ring buffers that start empty). The
same weights then get different activation scales in the two graphs, and int8 stream
predictions disagree with int8 non-stream ones on a few percent of clips although the float
models agree on all of them (kwsnb issue 11).

Here the quantization parameters are decided once, on the non-stream model, and forced into the
other graphs before they are quantized:

1. ``calibrate``: the converter's calibration alone (``_experimental_calibrate_only``, what
   ``tf.lite.experimental.QuantizationDebugger`` runs first) gives a float flatbuffer whose
   tensors carry the min/max seen on the representative data.
2. ``tensor_ranges``: those ranges keyed by the *Keras layer scope* of each tensor (the TFLite
   tensor name without its model scope, e.g. ``svdf_0_1/dense1_1/Tensordot/MatMul1``). Every
   mode builds the same layers with the same names (``kwsnb.layers.ModelBuilder``), so a key
   names the same computation in every graph.
3. ``force_ranges``: a calibrated streaming (or features-in) graph gets the non-stream ranges
   for every tensor whose key the non-stream graph has. Tensors only a streaming graph has are
   the ring buffers: the state inputs, the concatenation of state and new step, the slices that
   make the new state and the strided (dilated) window. They hold past values of the step they
   buffer, so they get that step's range (propagated through the ops that move values without
   changing them). Graph outputs (``StatefulPartitionedCall:k``) are keyed by the op that writes
   them and its input's key.
   A concatenation of branches (inception) keeps the reference range of the joined tensor.
4. ``quantize_calibrated``: ``mlir_quantize``, as the debugger calls it, with the front end
   denylisted (it stays float in every format, see ``kwsnb.tflite.export``).
5. ``repair_float_islands`` (``kwsnb.tflite.float_islands``): in streaming graphs ``mlir_quantize`` (TF 2.21) leaves float some
   ops that read a tensor also feeding a ring buffer (tc_resnet's strided 1x1 shortcut
   convolutions, xception's shortcut Dense layers): DEQUANTIZE, float kernel with float
   weights, QUANTIZE. Those ops are made int8 with the non-stream op's int8 weights, bias and
   output scale (a flatbuffer edit). Reproduced on a three-layer model; a slice between the
   tensor and the ring buffer fixes the toy but not the real models, hence the repair.

Weights are quantized from the same float values with the same per-channel scheme in every
graph, and biases from input scale x weight scale, so equal activation ranges make equal int8
weights and biases; a stream then computes, call by call, the integers the non-stream graph
computes for the same window. Measured on SC-lite-9 test clips (primed streams): identical int8
logits, stream vs non-stream, on every clip for all seven streaming architectures (svdf,
tc_resnet, svdf_resnet on all 1,625 clips; the others on 500), where separate calibrations
agreed on 96.4-99.1% of predictions (the committed reports). Features-in int8 shares the
ranges and the input scale; fed MFCCs computed by Keras and quantized in numpy (not the TFLite
front end's exact floats), it predicts as int8 does on every clip, with identical logits on 98%.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from kwsnb import streaming
from kwsnb.streaming import FEATURES_INPUT
from kwsnb.tflite import convert, runtime, stack
from kwsnb.tflite.flatbuffer import Graph, tensor_keys, unfuse_computed_bias
from kwsnb.tflite.float_islands import repair_float_islands
from kwsnb.tflite.runtime import ExportError

# Ops that move values without changing them: their outputs share their input's range (the
# MLIR quantizer gives them the same scale anyway).
PASSTHROUGH_OPS = {"RESHAPE", "EXPAND_DIMS", "SQUEEZE", "STRIDED_SLICE", "SLICE", "CONCATENATION",
                   "GATHER", "TRANSPOSE", "PAD", "PADV2"}
# Ops that only reshape: int8 in, the same parameters out.
# Stream calibration only builds the statistics fields; their values are replaced.
STREAM_CALIBRATION_CLIPS = 2


Range = tuple[float, float]


@dataclass
class Ranges:
    """Activation ranges of one calibrated graph, keyed by layer scope (see module docstring)."""

    by_key: dict[str, Range]
    # Keys of single name parts (fused ops join several names with ';'), for partial matches.
    by_part: dict[str, Range] = field(default_factory=dict)
    # Keys without TensorFlow's uniquifying number, where unique (only ``get_loose`` uses them).
    by_base: dict[str, Range] = field(default_factory=dict)
    # Layers with a single tensor in the reference (only ``get_layer`` uses them).
    by_layer: dict[str, Range] = field(default_factory=dict)

    def get_layer(self, key: str) -> Range | None:
        """The range of the reference's only tensor of ``key``'s layer (unfused keys only)."""
        return None if ";" in key else self.by_layer.get(key.split("/", 1)[0])

    def get(self, key: str) -> Range | None:
        if key in self.by_key:
            return self.by_key[key]
        for part in key.split(";"):
            if part in self.by_part:
                return self.by_part[part]
        return None

    def get_loose(self, key: str) -> Range | None:
        """``get``, else the range of the one key that differs only in its trailing number."""
        found = self.get(key)
        return found if found is not None else self.by_base.get(_base_key(key))


@dataclass
class ForceReport:
    """What ``force_ranges`` did: tensors given the reference range, propagated, left alone."""

    matched: list[str] = field(default_factory=list)
    propagated: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Calibration and quantization
# ---------------------------------------------------------------------------------------------

def calibrate(model, representative: Callable, what: str, input_signature: list | None = None) -> bytes:
    """Float TFLite model of ``model`` with calibration statistics (min/max per tensor);
    ``input_signature`` as for ``kwsnb.tflite.convert.convert_model`` (batch 1 for microcontrollers)."""
    import tensorflow as tf

    def configure(converter):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.experimental_mlir_quantizer = True
        stack.set_private_option(converter, "_experimental_calibrate_only", True)

    return convert.convert_model(model, what, configure, input_signature=input_signature)


def quantize_calibrated(calibrated: bytes, denylisted_nodes: Iterable[str] = (),
                        fully_quantize: bool = False, io_int8: bool = False,
                        what: str = "int8 model") -> bytes:
    """Int8 model from a calibrated one (per-channel weights, as the converter's default)."""
    import tensorflow as tf

    io_type = tf.int8 if io_int8 else tf.float32
    quantize = stack.mlir_quantize()
    try:
        with convert.quiet_converter():
            content = quantize(
                calibrated, disable_per_channel=not convert.INT8_PER_CHANNEL,
                fully_quantize=fully_quantize, input_data_type=io_type,
                output_data_type=io_type, denylisted_nodes=sorted(denylisted_nodes) or None)
    except Exception as error:  # noqa: BLE001 - explained, as kwsnb.tflite.export does
        raise ExportError(f"quantizing {what} failed: {convert.converter_message(error)}") \
            from error
    runtime.check_builtin_ops(content, what)
    return content


# ---------------------------------------------------------------------------------------------
# Ranges by layer scope
# ---------------------------------------------------------------------------------------------

def _range(tensor) -> Range | None:
    q = tensor.quantization
    if q is None or q.min is None or q.max is None or len(q.min) != 1:
        return None
    return float(q.min[0]), float(q.max[0])


def tensor_ranges(calibrated: bytes) -> Ranges:
    """The calibration ranges of a calibrated model, by key (see ``tensor_keys``)."""
    graph = Graph.read(calibrated).graph
    by_key, by_part, part_count = {}, {}, defaultdict(int)
    for tensor, key in zip(graph.tensors, tensor_keys(calibrated)):
        value = _range(tensor)
        if key is None or value is None:
            continue
        by_key[key] = value
        for part in key.split(";"):
            part_count[part] += 1
            by_part[part] = value
    # A part shared by several fused tensors is ambiguous: only full keys match it.
    by_base, base_count = {}, defaultdict(int)
    for key, value in by_key.items():
        base_count[_base_key(key)] += 1
        by_base[_base_key(key)] = value
    # The one tensor of a layer (a residual add, named Add in one graph and BiasAdd in another).
    by_layer, layer_count = {}, defaultdict(int)
    for key, value in by_key.items():
        layer = key.split("/", 1)[0]
        layer_count[layer] += 1
        by_layer[layer] = value
    return Ranges(by_key, {p: v for p, v in by_part.items() if part_count[p] == 1},
                  {b: v for b, v in by_base.items() if base_count[b] == 1},
                  {n: v for n, v in by_layer.items() if layer_count[n] == 1})


def _base_key(key: str) -> str:
    # TensorFlow makes op names unique with a number ("ExpandDims" / "ExpandDims1"), and which
    # graph gets which number depends on the graph: the key without it, where that is unique.
    return re.sub(r"\d+$", "", key)


def force_ranges(calibrated: bytes, reference: Ranges) -> tuple[bytes, ForceReport]:
    """``calibrated`` with every activation range taken from ``reference`` where the tensor's
    key is known, and ring-buffer tensors given the range of the step they buffer."""
    g = Graph.read(calibrated)

    graph = g.graph
    keys = tensor_keys(calibrated)
    report = ForceReport()
    graph_inputs = set(graph.inputs)
    values: dict[int, Range] = {}

    consumers: dict[int, list] = defaultdict(list)
    for op in graph.operators:
        for i in op.inputs:
            if i >= 0:
                consumers[i].append(op)

    def ahead(index: int, depth: int = 6) -> Range | None:
        """The reference range of a tensor that only moves ``index``'s values further on: the
        converter names an op's output after the op it feeds when it folds a reshape into it
        (a Dense output reshaped for the depthwise conv after it, mobilenet)."""
        for op in consumers.get(index, ()):
            if g.kind(op) not in PASSTHROUGH_OPS:
                continue
            for o in op.outputs:
                found = reference.get_loose(keys[o]) if keys[o] is not None else None
                if found is None and depth > 1:
                    found = ahead(o, depth - 1)
                if found is not None:
                    return found
        return None

    def set_range(index: int, value: Range) -> None:
        values[index] = value
        q = graph.tensors[index].quantization
        q.min = np.array([value[0]], np.float32)
        q.max = np.array([value[1]], np.float32)

    for op in graph.operators:
        name = g.kind(op)
        activations = [i for i in op.inputs if i >= 0 and _range(graph.tensors[i]) is not None
                       and not g.is_constant(i)]
        for o in op.outputs:
            tensor = graph.tensors[o]
            if _range(tensor) is None:
                continue
            label = (tensor.name or b"").decode()
            computed = [i for i in activations if i not in graph_inputs and i in values]
            if name == "CONCATENATION" and len(computed) > 1:
                # Branches joined (inception): the reference's range of the joined tensor, or
                # the union of the branches'.
                value = reference.get(keys[o]) if keys[o] is not None else None
                if value is None:
                    value = (min(values[i][0] for i in computed),
                             max(values[i][1] for i in computed))
                    report.unmatched.append(label)
                else:
                    report.matched.append(label)
                set_range(o, value)
                continue
            if name in PASSTHROUGH_OPS and activations:
                # The step being buffered: a computed input (not a graph input, i.e. a state).
                source = computed[0] if computed else next(
                    (i for i in activations if i in values), None)
                if source is not None:
                    set_range(o, values[source])
                    for i in activations:  # state inputs share the buffer's range
                        if i in graph_inputs:
                            set_range(i, values[source])
                    report.propagated.append(label)
                    continue
            value = reference.get(keys[o]) if keys[o] is not None else None
            if value is not None:
                set_range(o, value)
                if name in PASSTHROUGH_OPS:  # e.g. a features-in model's input
                    for i in activations:
                        if i in graph_inputs:
                            set_range(i, value)
                report.matched.append(label)
            elif (found := ahead(o)) is not None or (
                    keys[o] is not None and (found := reference.get_layer(keys[o])) is not None):
                set_range(o, found)
                report.propagated.append(label)
            else:
                values[o] = _range(tensor)
                report.unmatched.append(label)
    return g.pack(), report


# ---------------------------------------------------------------------------------------------
# The shared quantization and the three int8 formats
# ---------------------------------------------------------------------------------------------

@dataclass
class SharedQuantization:
    """Ranges decided once on the non-stream model; ``*_int8`` methods quantize each format
    with them. ``calibrated`` is the non-stream model's calibrated flatbuffer."""

    calibrated: bytes
    ranges: Ranges
    reports: dict[str, ForceReport] = field(default_factory=dict)
    repaired: dict[str, list[str]] = field(default_factory=dict)
    _non_stream: bytes | None = None

    def non_stream_content(self) -> bytes:
        """The non-stream int8 body (no denylist: only its int8 ops are looked up)."""
        if self._non_stream is None:
            self._non_stream = quantize_calibrated(self.calibrated, what="int8 model")
        return self._non_stream

    @classmethod
    def from_model(cls, model, representative_audio: np.ndarray) -> "SharedQuantization":
        """Calibrates the non-stream ``model`` on ``representative_audio`` [clips, samples]."""
        audio = runtime.as_audio(representative_audio)

        def representative():
            for clip in audio:
                yield [clip[np.newaxis]]

        # Batch 1, as the features-in model (static shapes for microcontrollers): both graphs
        # then have the same ops, so every tensor finds its range by name.
        calibrated = calibrate(model, representative, "int8 calibration",
                               convert.batch_one_signature(model))
        return cls(calibrated, tensor_ranges(calibrated))

    def non_stream_int8(self, model, float_content: bytes | None = None) -> bytes:
        """Int8 body, float front end, float audio in and logits out (``tflite_int8``)."""
        # The front end's tensors as named in the calibrated (batch-1) graph itself.
        front_end = convert.front_end_tensor_names(self.calibrated,
                                                   streaming.front_end_layer(model).name)
        content = quantize_calibrated(self.calibrated, front_end, what="int8 model")
        convert.check_front_end_float(content, front_end, "int8 model")
        self._non_stream = content
        return content

    def stream_external_int8(self, stream_model, float_content: bytes | None = None,
                             audio: np.ndarray | None = None) -> bytes:
        """``tflite_stream_external_int8`` with the non-stream ranges (states included)."""
        pairs = convert.stream_state_pairs(stream_model)
        float_content = float_content or convert.convert_float(
            stream_model, "external-state float model")
        if audio is None:  # any audio: calibration only creates the statistics fields
            audio = np.random.default_rng(0).uniform(-0.5, 0.5, (1, 16000)).astype(np.float32)
        samples = convert.external_state_inputs(
            float_content, pairs, runtime.as_audio(audio)[:STREAM_CALIBRATION_CLIPS])
        # Batch 1 like the non-stream calibration: the same ops, so the ranges match by name.
        calibrated = calibrate(stream_model, lambda: iter(samples),
                               "external-state int8 calibration",
                               convert.batch_one_signature(stream_model))
        try:
            calibrated, _ = unfuse_computed_bias(calibrated, self.calibrated)
        except ValueError as error:
            raise ExportError(stack.converter_mismatch(
                f"external-state int8 model: {error}")) from None
        forced, report = force_ranges(calibrated, self.ranges)
        self.reports["tflite_stream_external_int8"] = _shared(report, "external-state int8 model")
        front_end = convert.front_end_tensor_names(
            calibrated, streaming.front_end_layer(stream_model).name)
        content = quantize_calibrated(forced, front_end, what="external-state int8 model")
        content, self.repaired["tflite_stream_external_int8"] = repair_float_islands(
            content, self.non_stream_content(), front_end)
        runtime.check_builtin_ops(content, "external-state int8 model")
        convert.check_front_end_float(content, front_end, "external-state int8 model")
        return content

    def features_int8(self, model, audio: np.ndarray) -> bytes:
        """``tflite_features_int8`` (int8 MFCCs in, int8 logits out) with the non-stream
        ranges: the input scale is the one the int8 model quantizes its MFCCs with."""
        front_end, body = streaming.split_front_end(model)
        # Every clip: a tensor without a counterpart in the full graph (a first layer the
        # converter fused with the front end's normalization there) keeps its own range.
        features = convert.predict_batches(front_end, runtime.as_audio(audio))

        def representative():
            for feature in features:
                yield [feature[np.newaxis]]

        # Batch 1: static shapes throughout, so TensorFlow Lite Micro can run it (kwsnb.micro).
        signature = convert.batch_one_signature(
            body, {convert.tensor_name(body.inputs[0]): FEATURES_INPUT})
        calibrated = calibrate(body, representative, "features-in int8 calibration", signature)
        forced, report = force_ranges(calibrated, self.ranges)
        self.reports["tflite_features_int8"] = _shared(report, "features-in int8 model")
        return quantize_calibrated(forced, fully_quantize=True, io_int8=True,
                                   what="features-in int8 model")


def _shared(report: ForceReport, what: str) -> ForceReport:
    """``report`` if every tensor got a range from the non-stream model (measured: all of them,
    in all eight architectures, on TensorFlow 2.20 and 2.21); else ExportError naming the
    tensors, since their int8 parameters would silently differ between formats."""
    if report.unmatched:
        raise ExportError(stack.converter_mismatch(
            f"{what}: {len(report.unmatched)} tensor(s) match no tensor of the non-stream model "
            f"({', '.join(report.unmatched[:4])}), so their int8 ranges would not be shared"))
    return report


def convert_all_int8(model, stream_model, representative_audio: np.ndarray,
                     float_content: bytes | None = None,
                     stream_float_content: bytes | None = None) -> dict[str, bytes]:
    """The three int8 formats of one model, quantized once (see the module docstring)."""
    shared = SharedQuantization.from_model(model, representative_audio)
    return {"tflite_int8": shared.non_stream_int8(model, float_content),
            "tflite_features_int8": shared.features_int8(model, representative_audio),
            "tflite_stream_external_int8": shared.stream_external_int8(
                stream_model, stream_float_content, representative_audio)}
