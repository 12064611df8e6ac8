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
                               logits out; ``metadata.json`` holds the input scale and zero point;
                               batch 1, static shapes: runs in TFLite Micro (``kwsnb.micro``)
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

**One quantization for every int8 format** (``kwsnb.tflite.quantize``): the non-stream model is
calibrated once and its activation ranges, keyed by layer name, are forced into the streaming
and features-in graphs (ring-buffer states get the range of the step they buffer), so the same
weights get the same int8 parameters in every format and an int8 stream computes what the int8
non-stream model computes.

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

import json
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from kwsnb import streaming
from kwsnb.tflite import convert
from kwsnb.tflite.convert import (REPRESENTATIVE_STREAM_CLIPS, check_front_end_float,
                           convert_float, convert_model, external_state_inputs,
                           front_end_constant_bytes,
                           front_end_inputs, front_end_tensor_names, representative_subset,
                           stream_logits_output, stream_state_pairs, strip_tensor_names,
                           tensor_name, compact_flatbuffer, int16_front_end_constants)
from kwsnb.tflite.flatbuffer import Graph, drop_identity_ops, fewer_reshapes
from kwsnb.tflite.quantize import SharedQuantization
from kwsnb.tflite.stack import converter_mismatch, set_private_option
from kwsnb.tflite.runtime import (METADATA_FILE, MODEL_FILE, ExportError, as_audio,
                           describe_io, operator_names, tflite_schema)
from kwsnb.streaming import front_end_layer, mfcc_of

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
# Clips on which every export checks that int8 streaming and non-stream logits are identical.
VERIFY_CLIPS = 8


# ---------------------------------------------------------------------------------------------
# Front end: which layer, which TFLite ops
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------------------------


def convert_dynamic(model, float_content: bytes | None = None) -> bytes:
    """Dynamic-range quantization (the seed's "quant"), front end kept float."""
    import tensorflow as tf

    float_content = float_content or convert_float(model)
    front_end = front_end_tensor_names(float_content, front_end_layer(model).name)

    def configure(converter):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

    content = convert_model(model, "dynamic-range model", configure)
    content = _restore_float_weights(content, float_content, front_end)
    check_front_end_float(content, front_end, "dynamic-range model")
    return content


def _restore_float_weights(content: bytes, float_content: bytes, op_outputs: set[str]) -> bytes:
    """Gives the front-end ops (those writing ``op_outputs``) their float weights back, so
    they run float kernels instead of hybrid int8 ones.

    The float weights are found by role, not by name: the converter names the constants it
    quantizes after itself ("tfl.pseudo_qconst9" in TensorFlow 2.20, the layer's op name in
    2.21). Both models come from one SavedModel, so their front ends are the same ops in the
    same order; the k-th front-end op of the dynamic-range model takes, at each input slot
    holding an int8/int16 constant (directly or through a DEQUANTIZE), the float constant at
    the same slot of the k-th front-end op of the float model. Each pairing is checked: same
    operator, same shape, and the int8 values dequantize to the float ones. Anything else
    stops the export with the TensorFlow version in the message."""
    schema = tflite_schema()
    INTEGER = (schema.TensorType.INT8, schema.TensorType.INT16)

    def constant(g: Graph, index: int) -> np.ndarray | None:
        tensor = g.graph.tensors[index]
        return np.asarray(g.model.buffers[tensor.buffer].data, np.uint8) \
            if g.is_constant(index) else None

    def front_end_ops(g: Graph, skip_dequantize: bool) -> list:
        return [op for op in g.graph.operators
                if any((g.graph.tensors[o].name or b"").decode() in op_outputs
                       for o in op.outputs)
                and not (skip_dequantize and g.kind(op) == "DEQUANTIZE")]

    g = Graph.read(content)
    reference = Graph.read(float_content)
    producer = {o: op for op in g.graph.operators for o in op.outputs}
    ops = front_end_ops(g, skip_dequantize=True)
    reference_ops = front_end_ops(reference, skip_dequantize=False)
    if [g.kind(op) for op in ops] != [reference.kind(op) for op in reference_ops]:
        raise ExportError(converter_mismatch(
            "dynamic-range model: its front-end ops differ from the float model's "
            f"({[g.kind(op) for op in ops]} vs {[reference.kind(op) for op in reference_ops]})"))
    changed = 0
    for op, reference_op in zip(ops, reference_ops):
        for slot, index in enumerate(op.inputs):
            if index < 0:
                continue
            source = index
            if constant(g, index) is None and index in producer \
                    and g.kind(producer[index]) == "DEQUANTIZE":
                source = producer[index].inputs[0]  # a weight the converter dequantizes at run time
            tensor = g.graph.tensors[source]
            data = constant(g, source)
            if data is None or tensor.type not in INTEGER:
                continue  # an activation, float weights, or integer shapes and indices
            float_tensor = reference.graph.tensors[reference_op.inputs[slot]]
            float_data = constant(reference, reference_op.inputs[slot])
            what = f"{g.kind(op)} input {slot} of the front end"
            if float_data is None or float_tensor.type != schema.TensorType.FLOAT32 \
                    or list(float_tensor.shape) != list(tensor.shape):
                raise ExportError(converter_mismatch(
                    f"dynamic-range model: no float weights of shape {list(tensor.shape)} at "
                    f"{what} of the float model"))
            values = float_data.view(np.float32).reshape(list(tensor.shape))
            _check_dequantizes_to(tensor, data, values, what)
            new_buffer = schema.BufferT()
            new_buffer.data = float_data.copy()
            g.model.buffers.append(new_buffer)
            restored = schema.TensorT()
            restored.name, restored.type = tensor.name, schema.TensorType.FLOAT32
            restored.shape = np.array(tensor.shape, dtype=np.int32)
            restored.buffer = len(g.model.buffers) - 1
            g.graph.tensors.append(restored)
            # A new tensor, read only by this op: the int8 one may be shared with the body.
            inputs = np.array(op.inputs, dtype=np.int32)
            inputs[slot] = len(g.graph.tensors) - 1
            op.inputs = inputs
            changed += 1
    if not changed:
        return content
    # DEQUANTIZE ops nobody reads any more; unread tensors and buffers go in compact_flatbuffer.
    read = {i for op in g.graph.operators for i in op.inputs} | set(g.graph.outputs)
    g.graph.operators = [op for op in g.graph.operators
                         if g.kind(op) != "DEQUANTIZE" or any(o in read for o in op.outputs)]
    return g.pack()


def _check_dequantizes_to(tensor, data: np.ndarray, values: np.ndarray, what: str) -> None:
    """Raises ExportError unless the quantized constant ``tensor`` holds ``values`` (to within
    half a quantization step): the pairing by role found the right float weights."""
    schema = tflite_schema()
    dtype = np.int8 if tensor.type == schema.TensorType.INT8 else np.int16
    q = tensor.quantization
    if q is None or q.scale is None or len(q.scale) == 0:
        raise ExportError(converter_mismatch(f"dynamic-range model: {what} has no scale"))
    integers = data.view(dtype).reshape(values.shape).astype(np.float64)
    scale = np.asarray(q.scale, np.float64)
    zero = np.zeros_like(scale) if q.zeroPoint is None else np.asarray(q.zeroPoint, np.float64)
    if scale.size > 1:  # per channel, along quantizedDimension
        shape = [1] * values.ndim
        shape[q.quantizedDimension] = scale.size
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    error = np.abs((integers - zero) * scale - values)
    if not np.all(error <= 0.501 * np.broadcast_to(scale, values.shape) + 1e-6):
        raise ExportError(converter_mismatch(
            f"dynamic-range model: the int8 weights at {what} are not the float model's "
            f"(largest difference {error.max():.3g})"))


def _quantize_with_float_front_end(model, float_content: bytes, representative: Callable,
                                   what: str) -> bytes:
    """Post-training int8 of everything but the front end (see the module docstring)."""
    import tensorflow as tf

    front_end = front_end_tensor_names(float_content, front_end_layer(model).name)

    def configure(converter):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        # The debugger reads it (per-tensor weights, as every kwsnb int8 format).
        set_private_option(converter, "_experimental_disable_per_channel",
                           not convert.INT8_PER_CHANNEL)

    def quantize(converter):
        options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=sorted(front_end))
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=representative, debug_options=options)
        return debugger.get_nondebug_quantized_model()

    content = convert_model(model, what, configure, quantize)
    check_front_end_float(content, front_end, what)
    return content


def convert_int8(model, representative_audio: np.ndarray, float_content: bytes | None = None) -> bytes:
    """Int8 body, float front end, float32 audio in and logits out."""
    shared = SharedQuantization.from_model(model, representative_audio)
    return shared.non_stream_int8(model, float_content)


def convert_features_int8(model, representative_audio: np.ndarray) -> bytes:
    """Full-int8 body for microcontrollers: int8 MFCC [1, frames, dct] in, int8 logits out.
    Calibrated on ``representative_audio`` through the whole model (``kwsnb.tflite.quantize``): the
    same ranges as ``tflite_int8``."""
    shared = SharedQuantization.from_model(model, representative_audio)
    return shared.features_int8(model, representative_audio)


def convert_stream_external_int8(stream_model, representative_audio: np.ndarray,
                                 float_content: bytes | None = None,
                                 clips: int = REPRESENTATIVE_STREAM_CLIPS,
                                 model=None) -> bytes:
    """External-state streaming model with int8 body and states (float I/O), front end float.

    With ``model`` (the non-stream model): quantized with the ranges of ``model`` calibrated on
    ``representative_audio`` (``kwsnb.tflite.quantize``), as ``tflite_int8`` is. Without: calibrated on
    its own, on every packet of ``clips`` clips with the states the float model produces (int8
    predictions then differ from ``tflite_int8``'s on a few percent of clips)."""
    if model is not None:
        shared = SharedQuantization.from_model(model, representative_audio)
        return shared.stream_external_int8(stream_model, float_content, representative_audio)
    pairs = stream_state_pairs(stream_model)
    float_content = float_content or convert_float(stream_model, "external-state float model")
    samples = external_state_inputs(float_content, pairs, as_audio(representative_audio)[:clips])

    def representative():
        yield from samples

    return _quantize_with_float_front_end(stream_model, float_content, representative,
                                          "external-state int8 model")


def convert_stream_internal(stream_model) -> bytes:
    """Internal-state streaming model, float32, states in TFLite resource variables."""

    def configure(converter):
        converter.experimental_enable_resource_variables = True

    return convert_model(stream_model, "internal-state float model", configure)


# ---------------------------------------------------------------------------------------------
# Export to folders
# ---------------------------------------------------------------------------------------------

def streaming_models(model) -> dict:
    """{"external": ..., "internal": ...} streaming Keras models with the model's weights."""
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
    try:  # fails early, with a clear message, for a model without one
        front_end_layer(model)
    except ValueError as error:
        raise ExportError(str(error)) from None
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

    shared = []

    def quantization():
        """One calibration of ``model`` for every int8 format (kwsnb.tflite.quantize)."""
        if not shared:
                    shared.append(SharedQuantization.from_model(model, audio))
        return shared[0]

    builders = {
        "tflite_float": float_content,
        "tflite_dynamic": lambda: convert_dynamic(model, float_content()),
        "tflite_int8": lambda: quantization().non_stream_int8(model, float_content()),
        "tflite_features_int8": lambda: quantization().features_int8(model, audio),
        "tflite_stream_external_float": external_float,
        "tflite_stream_external_int8": lambda: quantization().stream_external_int8(
            stream_models["external"], external_float(), audio),
        "tflite_stream_internal_float": lambda: convert_stream_internal(stream_models["internal"]),
    }
    paths = {}
    iterator = formats
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(formats, desc="export", unit="format")
    finished: dict[str, bytes] = {}

    def finish(name: str) -> bytes:
        """The format's final bytes: converted, then made smaller without changing outputs."""
        if name in finished:
            return finished[name]
        content = builders[name]()
        if name in ("tflite_int8", "tflite_stream_external_int8"):
            # The mel weights as int16 (convert.FRONT_END_INT16_MIN_ELEMENTS): 1.9 KB less.
            content = int16_front_end_constants(content, front_end_tensor_names(
                content, front_end_layer(model).name))
        if name == "tflite_features_int8":
            # Time layers' tensors kept 4-D between the 2-D ops (kwsnb.tflite.flatbuffer): 12-23 fewer
            # RESHAPEs, 1.0-1.9 KB less in the four largest models, outputs bit-identical.
            content = fewer_reshapes(drop_identity_ops(content)[0])[0]
        content = compact_flatbuffer(strip_tensor_names(
            content, None if name == "tflite_features_int8" else front_end_layer(model).name))
        _check_loads(content, name)
        finished[name] = content
        return content

    for name in iterator:
        content = finish(name)
        graph_model = (stream_models["external" if "external" in name else "internal"]
                       if name in STREAM_FORMATS else model)
        metadata = _metadata(name, content, graph_model, labels)
        if name == "tflite_stream_external_int8":
            # The shared calibration is the reason this format exists: prove it held here.
            verify_int8_stream(finish("tflite_int8"), content, metadata, audio[:VERIFY_CLIPS])
        folder = out_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / MODEL_FILE
        path.write_bytes(content)
        (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
        paths[name] = path
    return paths


def weights_digest(weights_path: Path) -> str:
    """The sha256 of a weights file: what a format folder records as the weights it came from."""
    import hashlib

    return hashlib.sha256(Path(weights_path).read_bytes()).hexdigest()


def recorded_weights(format_dir: Path) -> str | None:
    """The weights digest a format folder's metadata.json recorded at export, or None."""
    try:
        return json.loads((Path(format_dir) / METADATA_FILE).read_text()).get("weights_sha256")
    except (OSError, ValueError):
        return None


def record_weights(format_dir: Path, digest: str) -> None:
    """Records in a format folder's metadata.json which weights it was exported from."""
    metadata = Path(format_dir) / METADATA_FILE
    content = json.loads(metadata.read_text()) if metadata.is_file() else {}
    metadata.write_text(json.dumps({**content, "weights_sha256": digest}, indent=2))


def _check_loads(content: bytes, name: str) -> None:
    """Raises ExportError unless LiteRT can allocate ``content``: a converter that writes a
    model its own runtime refuses (TensorFlow 2.20 fuses a residual add into a FULLY_CONNECTED
    bias in mobilenet_v2's streaming graph, which no int8 kernel takes) is stopped here, with
    the TensorFlow version, instead of at the first use of the file."""
    from kwsnb.tflite.runtime import make_interpreter

    try:
        make_interpreter(content).allocate_tensors()
    except (RuntimeError, ValueError) as error:
        raise ExportError(converter_mismatch(
            f"{name} was converted but LiteRT cannot load it ({str(error).strip()[:300]})")) \
            from None


def verify_int8_stream(non_stream: bytes, stream: bytes, stream_metadata: dict,
                       audio: np.ndarray) -> None:
    """Raises ExportError unless the int8 streaming model, primed with each clip's first packet
    (so it sees exactly the non-stream frames), ends each clip with the int8 non-stream
    model's logits, bit for bit. This is what ``kwsnb.tflite.quantize`` promises; a TensorFlow
    release whose converter names or quantizes tensors differently breaks it, and the export
    stops here instead of writing a stream that disagrees."""
    from kwsnb.tflite.runtime import TFLiteModel, predict_non_stream, stream_runner

    audio = as_audio(audio)
    expected = predict_non_stream(TFLiteModel(non_stream, "tflite_int8"), audio)
    runner = stream_runner(TFLiteModel(stream, "tflite_stream_external_int8"), stream_metadata)
    streamed = runner.run_clips(audio, prime=True)
    if not np.array_equal(expected, streamed):
        differ = int(np.sum(np.any(expected != streamed, axis=-1)))
        raise ExportError(converter_mismatch(
            f"tflite_stream_external_int8 computes other logits than tflite_int8 on {differ} of "
            f"{len(audio)} clips (largest difference {np.max(np.abs(expected - streamed)):.4g}): "
            "the two int8 models do not share one quantization"))


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
        metadata["packet_input"] = tensor_name(graph_model.inputs[0])
        metadata["logits_output"] = stream_logits_output(graph_model)
        metadata["states"] = [{"input": i, "output": o} for i, o in pairs]
        # The audio ring buffer (priming it with a clip's first packet makes a stream from
        # reset see exactly the non-stream frames; see kwsnb.evaluate).
        audio_states = [n for n in front_end_inputs(content, front_end_name) if n in dict(pairs)]
        metadata["audio_state"] = audio_states[0] if len(audio_states) == 1 else None
    return metadata
