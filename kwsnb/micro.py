"""Microcontroller export: features-in int8 models that run in TensorFlow Lite Micro (TFLM).

Two models per trained architecture, both the body alone (the MFCC front end runs on the device,
outside the model), int8 in and int8 out:

``features_int8``         ``kwsnb.export``'s ``tflite_features_int8``: a second of int8 MFCCs
                          ``[1, frames, dct]`` in, int8 logits ``[1, labels]`` out.
``stream_features_int8``  the same body in external-state streaming mode: one int8 MFCC frame
                          ``[1, 1, dct]`` per call (every 20 ms) plus the body's ring buffers as
                          int8 state inputs; int8 logits and the new states out. The front end's
                          audio ring buffer is the device's business, so it is not a state here.

**Why the models used to fail in TFLM** ("Didn't find op for builtin opcode 'REDUCE_PROD'"):
``keras.Model.export`` always relaxes the batch dimension to None. With an unknown batch, every
Dense applied to ``[batch, time, channels]`` (a ``tensordot``: SHAPE, GATHER, REDUCE_PROD, PACK,
CONCATENATION feeding two RESHAPEs) and every Flatten (SHAPE, STRIDED_SLICE, PACK feeding a
RESHAPE) computes its shape at run time, and TFLM has no REDUCE_PROD (nor SHAPE-driven
reshapes to plan an arena with). tc_resnet has neither (Conv1D only, Dense after the pooling),
so it was the one model that loaded. The fix exports with a batch-1 signature
(``kwsnb.export.batch_one_signature``): every shape is a constant, the graph keeps only RESHAPE,
FULLY_CONNECTED, the convolutions, ...; weights and numbers are unchanged.

Functions:

``convert_stream_features_int8(model, audio)``  the streaming features-in int8 model (bytes)
``stream_features_model(model)``                its Keras graph (float), for inspection
``tflm_check(model)``                           runs in TFLM?, arena bytes, error message
``TFLMRunner`` / ``LiteRTRunner``               run a model by signature names (raw int8 I/O)
``write_c_array`` / ``read_c_array``            C source/header pair of a model, and back
``python -m kwsnb.micro TRAIN_DIR --out DIR``   both models as .tflite, .cc/.h, metadata, README

TFLM's Python interpreter comes from the ``tflite-micro`` package (``pip install tflite-micro``;
module ``tflite_micro.python.tflite_micro.runtime``), in the ``test`` extra.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from kwsnb import convert, stack
from kwsnb import export as exporting
from kwsnb import runtime, streaming
from kwsnb.export import ExportError

FEATURES_INPUT = convert.FEATURES_INPUT  # name of the MFCC input of both models
NON_STREAM = "features_int8"
STREAM = "stream_features_int8"
MICRO_FORMATS = (NON_STREAM, STREAM)
ARRAY_ALIGNMENT = 16
# Arena given to the TFLM interpreter before its recorded usage is known; models here need
# well under 100 KB.
PROBE_ARENA_BYTES = 1 << 20


class MicroError(RuntimeError):
    """A model or train_dir that cannot be exported for microcontrollers, explained."""


# ---------------------------------------------------------------------------------------------
# The streaming features-in model
# ---------------------------------------------------------------------------------------------

def stream_features_model(model, stream_model=None):
    """The body of ``model`` in external-state streaming mode, front end left out (Keras, float).

    Inputs ``[features [1, 1, dct], <layer>_state, ...]`` (every state of the external-state
    streaming model except the front end's audio ring buffer); outputs a dict ``{"logits": ...,
    "<layer>_state": new state, ...}``. ``stream_model``: the external-state model if already
    built (``kwsnb.streaming.to_stream_external(model)``).
    """
    import keras

    from kwsnb.layers import FRONT_END, LOGITS, STATE_SUFFIX

    if stream_model is None:
        stream_model = streaming.to_stream_external(model)
    front_end = streaming.front_end_layer(stream_model)
    output = front_end.output
    frames = output[0] if isinstance(output, (list, tuple)) else output
    audio_state = front_end.name + STATE_SUFFIX if front_end.name else FRONT_END + STATE_SUFFIX
    states = [x for x in stream_model.inputs[1:] if convert.tensor_name(x) != audio_state]
    structure = stream_model.output
    if not isinstance(structure, dict) or LOGITS not in structure:
        raise MicroError(f"{stream_model.name!r} is not a kwsnb external-state streaming model "
                         "(expected a dict output with 'logits' and the new states)")
    outputs = {LOGITS: structure[LOGITS]}
    outputs.update({convert.tensor_name(x): structure[convert.tensor_name(x)] for x in states})
    try:
        return keras.Model([frames, *states], outputs, name=f"{model.name}_stream_body")
    except (ValueError, AttributeError) as error:
        raise MicroError(f"cannot cut the streaming model {stream_model.name!r} at its front end "
                         f"({error})") from None


def _stream_signature(body) -> list:
    return convert.batch_one_signature(
        body, {convert.tensor_name(body.inputs[0]): FEATURES_INPUT})


def stream_state_pairs(content: bytes) -> list[str]:
    """State names of a streaming features-in model: each is an input and an output."""
    io = runtime.describe_io(content)
    return [name for name in io["inputs"] if name != FEATURES_INPUT and name in io["outputs"]]


def stream_calibration_inputs(body, features: np.ndarray) -> list[dict]:
    """Runs the float streaming body (``stream_features_model``) over every frame of each
    clip's features ([clips, frames, dct]; states zeroed per clip) and returns the input dicts
    it saw, keyed by the converted model's input names (calibration data)."""
    import tensorflow as tf

    names = [convert.tensor_name(x) for x in body.inputs[1:]]
    call = tf.function(lambda inputs: body(inputs, training=False))
    samples = []
    for clip in np.asarray(features, np.float32):
        states = [np.zeros(x.shape, np.float32) for x in body.inputs[1:]]
        for frame in clip:
            frame = frame[np.newaxis, np.newaxis]
            samples.append({FEATURES_INPUT: frame, **dict(zip(names, states))})
            outputs = call([tf.constant(frame), *map(tf.constant, states)])
            states = [outputs[name].numpy() for name in names]
    return samples


def convert_stream_features_int8(model, representative_audio: np.ndarray,
                                 clips: int | None = convert.REPRESENTATIVE_CLIPS,
                                 stream_model=None) -> bytes:
    """Streaming features-in int8 model (external state) for microcontrollers.

    Full int8, as ``tflite_features_int8``: int8 MFCC frame, int8 states and int8 logits.
    Calibrated on every frame of ``clips`` of ``representative_audio`` (training clips; the
    same ``export.representative_subset`` the non-stream export uses, so the input
    quantization matches), with the states the float streaming body produces on them.
    Batch-1 signature: static shapes, so TFLM runs it.
    """
    import tensorflow as tf

    audio = runtime.as_audio(representative_audio)
    if clips is not None:
        audio = convert.representative_subset(audio, clips)
    front_end, _ = streaming.split_front_end(model)
    features = convert.predict_batches(front_end, audio)
    body = stream_features_model(model, stream_model)
    signature = _stream_signature(body)
    samples = stream_calibration_inputs(body, features)

    def representative():
        yield from samples

    def configure(converter):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        # Per-tensor weights, as every kwsnb int8 format (fewer quantization tables).
        stack.set_private_option(converter, "_experimental_disable_per_channel",
                                   not convert.INT8_PER_CHANNEL)

    content = convert.convert_model(body, "streaming features-in int8 model", configure,
                                    input_signature=signature)
    # Firmware and the metadata address tensors by signature name and position: the tensor
    # names, the converter's metadata and unused tensors are dead weight on a microcontroller.
    return convert.compact_flatbuffer(convert.strip_tensor_names(content, None))


# ---------------------------------------------------------------------------------------------
# Running models: LiteRT and TFLM, by signature name, raw (int8) values
# ---------------------------------------------------------------------------------------------

def _content(model) -> bytes:
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    path = Path(model)
    if not path.is_file():
        raise MicroError(f"{path} not found")
    return path.read_bytes()


def _io_positions(content: bytes) -> tuple[dict[str, int], dict[str, int]]:
    """{signature name: position in the subgraph's inputs / outputs} (TFLM addresses tensors
    by position)."""
    schema = runtime.tflite_schema()
    model = schema.ModelT.InitFromPackedBuf(content, 0)
    graph = model.subgraphs[0]
    graph_inputs, graph_outputs = list(graph.inputs), list(graph.outputs)
    if not model.signatureDefs:
        return ({f"input_{i}": i for i in range(len(graph_inputs))},
                {f"output_{i}": i for i in range(len(graph_outputs))})
    signature = model.signatureDefs[0]
    return ({m.name.decode(): graph_inputs.index(m.tensorIndex) for m in signature.inputs},
            {m.name.decode(): graph_outputs.index(m.tensorIndex) for m in signature.outputs})


# LiteRT kernels to compare TFLM with. "default" is what kwsnb.evaluate runs (XNNPACK for
# int8 FULLY_CONNECTED/CONV, which rounds differently: measured up to 2 int8 steps from TFLM
# on logits); "builtin" the optimized builtin kernels without delegates; "reference" LiteRT's
# reference kernels, of which TFLM's are ports.
LITERT_KERNELS = ("default", "builtin", "reference")


class LiteRTRunner:
    """A LiteRT interpreter fed and read by signature name; values as stored (int8 for int8
    tensors). ``inputs``/``outputs``: details by name, Keras order. ``kernels``: one of
    ``LITERT_KERNELS``."""

    def __init__(self, model, kernels: str = "default"):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolvers = {"default": OpResolverType.AUTO,
                     "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                     "reference": OpResolverType.BUILTIN_REF}
        if kernels not in resolvers:
            raise ValueError(f"kernels must be one of {LITERT_KERNELS}, got {kernels!r}")
        self.content = _content(model)
        self.interpreter = Interpreter(model_content=self.content, num_threads=1,
                                       experimental_op_resolver_type=resolvers[kernels])
        self.interpreter.allocate_tensors()
        self.inputs, self.outputs = runtime.signature_details(self.interpreter)

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name, value in feeds.items():
            details = self.inputs[name]
            self.interpreter.set_tensor(details["index"],
                                        np.asarray(value, details["dtype"]).reshape(details["shape"]))
        self.interpreter.invoke()
        return {name: self.interpreter.get_tensor(d["index"]).copy()
                for name, d in self.outputs.items()}


def _tflm_runtime():
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as error:
        raise MicroError("TensorFlow Lite Micro's Python interpreter is not installed "
                         f"({error}): pip install tflite-micro") from None
    return runtime


def tflm_available() -> bool:
    """Whether TensorFlow Lite Micro's Python interpreter (``tflite-micro``) is installed."""
    try:
        _tflm_runtime()
    except MicroError:
        return False
    return True


@contextlib.contextmanager
def _captured_output(sink: list):
    """Collects what C++ code writes to file descriptors 1 and 2 (TFLM reports errors and
    arena usage there) into ``sink`` as one string."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 1)
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            capture.seek(0)
            sink.append(capture.read().decode(errors="replace"))


class TFLMRunner:
    """TFLM's host interpreter fed and read by signature name (names from the flatbuffer's
    signature; TFLM itself knows positions only). Raises MicroError with TFLM's own message
    when the model cannot be loaded."""

    def __init__(self, model, arena_size: int = PROBE_ARENA_BYTES):
        tflm = _tflm_runtime()
        self.content = _content(model)
        self.arena_size = int(arena_size)
        self.input_positions, self.output_positions = _io_positions(self.content)
        log: list[str] = []
        try:
            with _captured_output(log):
                self.interpreter = tflm.Interpreter.from_bytes(self.content,
                                                                  arena_size=self.arena_size)
        except (RuntimeError, ValueError) as error:
            raise MicroError(_tflm_message(error, log)) from None
        self.inputs = {name: self.interpreter.get_input_details(i)
                       for name, i in self.input_positions.items()}

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name, value in feeds.items():
            details = self.inputs[name]
            self.interpreter.set_input(
                np.ascontiguousarray(np.asarray(value, details["dtype"]).reshape(details["shape"])),
                self.input_positions[name])
        log: list[str] = []
        try:
            with _captured_output(log):
                self.interpreter.invoke()
        except (RuntimeError, ValueError) as error:
            raise MicroError(_tflm_message(error, log)) from None
        return {name: np.array(self.interpreter.get_output(i))
                for name, i in self.output_positions.items()}

    def arena_used(self) -> int | None:
        """Arena bytes TFLM's recording allocator reports (call after one ``run``)."""
        log: list[str] = []
        with _captured_output(log):
            self.interpreter.print_allocations()
        found = re.search(r"Arena allocation total (\d+) bytes", log[0])
        return int(found.group(1)) if found else None


def _tflm_message(error: Exception, log: list[str]) -> str:
    lines = [line.strip() for line in "".join(log).splitlines() if line.strip()]
    lines = list(dict.fromkeys(lines))  # TFLM repeats itself
    return "; ".join(lines + [str(error)])[:1000]


def _zero_inputs(runner: TFLMRunner) -> dict[str, np.ndarray]:
    """Inputs at their zero point (0.0) for every tensor."""
    feeds = {}
    for name, details in runner.inputs.items():
        zero_points = details.get("quantization_parameters", {}).get("zero_points")
        zero = int(zero_points[0]) if zero_points is not None and len(zero_points) else 0
        feeds[name] = np.full(details["shape"], zero, details["dtype"])
    return feeds


def tflm_check(model, inputs: Mapping[str, np.ndarray] | None = None,
               find_minimum: bool = True) -> dict:
    """Does ``model`` (bytes or a .tflite path) load and run in TFLM, and in how much arena?

    Returns ``{"runs": bool, "arena_bytes": int | None, "arena_min_bytes": int | None,
    "error": str | None, "operators": [...], "size_bytes": int}``. ``arena_bytes``: what TFLM's
    recording allocator reports after one invoke (``inputs`` by signature name, zero points
    by default); ``arena_min_bytes``: the smallest arena (to 16 bytes) that still loads and
    runs, found by bisection (``find_minimum``). An error (missing op, arena too small, no
    tflite-micro) comes back as ``runs: False`` with TFLM's message, never as an exception,
    so a report can tabulate it.
    """
    content = _content(model)
    result = {"runs": False, "arena_bytes": None, "arena_min_bytes": None, "error": None,
              "operators": runtime.operator_names(content), "size_bytes": len(content)}
    try:
        runner = TFLMRunner(content)
        runner.run(dict(inputs) if inputs is not None else _zero_inputs(runner))
        result["arena_bytes"] = runner.arena_used()
    except MicroError as error:
        result["error"] = str(error)
        return result
    result["runs"] = True
    if find_minimum:
        result["arena_min_bytes"] = minimum_arena(content, inputs, result["arena_bytes"])
    return result


# One probe of an arena size, in a child process: TFLM aborts or crashes (instead of returning
# an error) for some arena sizes that are too small ("All temp buffers must be freed before
# calling ResetTempAllocations()", measured), which must not take the caller down with it.
_PROBE = """
import sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
content = open(sys.argv[1], "rb").read()
interpreter = runtime.Interpreter.from_bytes(content, arena_size=int(sys.argv[2]))
inputs = np.load(sys.argv[3])
for position in range(len(inputs.files)):
    interpreter.set_input(inputs[f"arr_{position}"], position)
interpreter.invoke()
print("KWSNB_ARENA_OK")
"""


def arena_works(content: bytes, size: int, inputs: Sequence[np.ndarray]) -> bool:
    """Whether TFLM loads and runs ``content`` in an arena of ``size`` bytes (``inputs`` by
    input position), tried in a child process."""
    import subprocess

    with tempfile.TemporaryDirectory(prefix="kwsnb_micro_") as tmp:
        model_path, inputs_path = Path(tmp) / "model.tflite", Path(tmp) / "inputs.npz"
        model_path.write_bytes(content)
        np.savez(inputs_path, *inputs)
        try:
            done = subprocess.run([sys.executable, "-c", _PROBE, str(model_path), str(int(size)),
                                   str(inputs_path)], capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            return False
    return done.returncode == 0 and "KWSNB_ARENA_OK" in done.stdout


def minimum_arena(content: bytes, inputs: Mapping[str, np.ndarray] | None = None,
                  hint: int | None = None) -> int:
    """Smallest arena (a multiple of 16 bytes) in which ``content`` loads and runs in TFLM.

    ``hint``: the recording allocator's total (``TFLMRunner.arena_used``), in practice exactly
    the minimum, so two probes (hint works, hint - 16 does not) usually settle it; otherwise a
    bisection."""
    runner = TFLMRunner(content)
    feeds = dict(inputs) if inputs is not None else _zero_inputs(runner)
    ordered = [None] * len(runner.input_positions)
    for name, position in runner.input_positions.items():
        details = runner.inputs[name]
        ordered[position] = np.ascontiguousarray(
            np.asarray(feeds[name], details["dtype"]).reshape(details["shape"]))

    def works(size: int) -> bool:
        return arena_works(content, size, ordered)

    high = -(-(hint or PROBE_ARENA_BYTES) // ARRAY_ALIGNMENT) * ARRAY_ALIGNMENT
    while not works(high):
        high *= 2
        if high > 64 * PROBE_ARENA_BYTES:
            raise MicroError("the model does not run in TFLM with 64 MiB of arena")
    if hint and not works(high - ARRAY_ALIGNMENT):
        return high
    low = 0  # does not work (assumed)
    while high - low > ARRAY_ALIGNMENT:
        middle = (low + high) // 2 // ARRAY_ALIGNMENT * ARRAY_ALIGNMENT
        if middle <= low:
            break
        if works(middle):
            high = middle
        else:
            low = middle
    return high


# ---------------------------------------------------------------------------------------------
# Agreement between runtimes and between stream and non-stream
# ---------------------------------------------------------------------------------------------

def quantize(values: np.ndarray, details: Mapping) -> np.ndarray:
    """Float values -> the tensor's int8 (``details`` from ``describe_io``: scale, zero_point)."""
    return np.clip(np.round(np.asarray(values, np.float32) / details["scale"])
                   + details["zero_point"], -128, 127).astype(np.int8)


def dequantize(values: np.ndarray, details: Mapping) -> np.ndarray:
    return (np.asarray(values, np.float32) - details["zero_point"]) * details["scale"]


def run_non_stream(runner, features_int8: np.ndarray) -> np.ndarray:
    """int8 logits [clips, labels] of a non-stream features-in model (LiteRT or TFLM runner)."""
    (name,) = runner.inputs
    outputs = [runner.run({name: clip[np.newaxis]}) for clip in features_int8]
    return np.stack([next(iter(o.values()))[0] for o in outputs])


def run_stream(runner, io: Mapping, features_int8: np.ndarray) -> np.ndarray:
    """Streams each clip's int8 frames ([clips, frames, dct]) through a streaming features-in
    model from zero states; int8 logits after every frame, [clips, frames, labels].

    A new state goes back in as it came out when its input and output share scale and zero
    point (the converter gives them the same: the state is a slice of a concatenation with
    it); otherwise it is requantized."""
    from kwsnb.layers import LOGITS

    inputs, outputs = io["inputs"], io["outputs"]
    states = [name for name in inputs if name != FEATURES_INPUT]
    results = []
    for clip in features_int8:
        state = {name: np.full(inputs[name]["shape"], inputs[name]["zero_point"], np.int8)
                 for name in states}
        logits = []
        for frame in clip:
            out = runner.run({FEATURES_INPUT: frame[np.newaxis, np.newaxis], **state})
            logits.append(out[LOGITS][0])
            state = {name: _requantize(out[name], outputs[name], inputs[name])
                     for name in states}
        results.append(np.stack(logits))
    return np.stack(results)


def _requantize(values: np.ndarray, source: Mapping, target: Mapping) -> np.ndarray:
    if (source["scale"], source["zero_point"]) == (target["scale"], target["zero_point"]):
        return values
    return quantize(dequantize(values, source), target)


def features_int8(model, audio: np.ndarray, input_details: Mapping) -> np.ndarray:
    """The model's float front end on ``audio`` [clips, samples], quantized for the
    features-in models' input: int8 [clips, frames, dct]."""
    front_end, _ = streaming.split_front_end(model)
    return quantize(convert.predict_batches(front_end, runtime.as_audio(audio)),
                    input_details)


def _agreement(litert: np.ndarray, tflm: np.ndarray) -> dict:
    """How far TFLM's int8 logits are from LiteRT's: max difference in int8 steps, share of
    logits that differ at all, share of argmaxes that agree (over the last axis)."""
    litert, tflm = litert.astype(int), tflm.astype(int)
    return {"max_step_difference": int(np.abs(litert - tflm).max()),
            "logits_differing": float(np.mean(litert != tflm)),
            "argmax_agreement": float(np.mean(litert.argmax(-1) == tflm.argmax(-1)))}


def compare(model, audio: np.ndarray, non_stream: bytes | None = None,
            stream: bytes | None = None, arena: bool = True,
            kernels: Iterable[str] = ("default", "reference")) -> dict:
    """TFLM against LiteRT for each given model on ``audio`` [clips, samples], and the stream
    against the non-stream model.

    The non-stream model gets each clip's int8 MFCCs; the streaming one the same frames one by
    one from zero states (its logits after every frame are compared). Returns ``{"features_int8":
    {...}, "stream_features_int8": {...}}``, each with ``tflm_check``'s fields, ``clips`` and,
    per LiteRT ``kernels`` (``LITERT_KERNELS``), ``max_step_difference``, ``logits_differing``,
    ``argmax_agreement`` (``..._reference`` etc.; the unsuffixed ones are the first kernels').
    The stream entry also has ``stream_vs_non_stream_max_steps`` (after the last frame, in the
    non-stream model's output steps; also ``_p99_steps`` and ``_mean_steps``: the two models
    are calibrated separately, so their output ranges differ and one may saturate where the
    other does not) and ``stream_vs_non_stream_argmax_agreement``.
    """
    kernels = list(kernels)
    results = {}
    io_non_stream = runtime.describe_io(non_stream) if non_stream is not None else None
    io_stream = runtime.describe_io(stream) if stream is not None else None
    reference_io = io_non_stream or io_stream
    features = features_int8(model, audio, next(iter(reference_io["inputs"].values())))

    def agreements(entry, litert_runs, tflm_run):
        for index, kind in enumerate(kernels):
            for key, value in _agreement(litert_runs[kind], tflm_run).items():
                entry[key if index == 0 else f"{key}_{kind}"] = value

    non_stream_logits = None
    if non_stream is not None:
        entry = tflm_check(non_stream, find_minimum=arena)
        if entry["runs"]:
            litert = {kind: run_non_stream(LiteRTRunner(non_stream, kind), features)
                      for kind in kernels}
            agreements(entry, litert, run_non_stream(TFLMRunner(non_stream), features))
            entry["clips"] = len(audio)
            non_stream_logits = (litert[kernels[0]], next(iter(io_non_stream["outputs"].values())))
        results[NON_STREAM] = entry
    if stream is not None:
        entry = tflm_check(stream, find_minimum=arena)
        stream_input = io_stream["inputs"][FEATURES_INPUT]
        source = next(iter(reference_io["inputs"].values()))
        frames = features
        if (source["scale"], source["zero_point"]) != (stream_input["scale"],
                                                       stream_input["zero_point"]):
            frames = quantize(dequantize(features, source), stream_input)
            entry["input_requantized"] = True
        if entry["runs"]:
            litert = {kind: run_stream(LiteRTRunner(stream, kind), io_stream, frames)
                      for kind in kernels}
            tflm = run_stream(TFLMRunner(stream), io_stream, frames)
            agreements(entry, litert, tflm)
            last = _agreement(litert[kernels[0]][:, -1], tflm[:, -1])
            entry.update(clips=len(audio), frames=int(frames.shape[1]),
                         max_step_difference_last_frame=last["max_step_difference"],
                         argmax_agreement_last_frame=last["argmax_agreement"])
            if non_stream_logits is not None:
                reference, details = non_stream_logits
                last = dequantize(litert[kernels[0]][:, -1], io_stream["outputs"]["logits"])
                steps = np.abs(last - dequantize(reference, details)) / details["scale"]
                entry.update(stream_vs_non_stream_max_steps=float(steps.max()),
                             stream_vs_non_stream_p99_steps=float(np.percentile(steps, 99)),
                             stream_vs_non_stream_mean_steps=float(steps.mean()),
                             stream_vs_non_stream_argmax_agreement=float(
                                 np.mean(last.argmax(-1) == reference.argmax(-1))),
                             same_output_quantization=bool(
                                 (io_stream["outputs"]["logits"]["scale"],
                                  io_stream["outputs"]["logits"]["zero_point"])
                                 == (details["scale"], details["zero_point"])))
        results[STREAM] = entry
    return results


# ---------------------------------------------------------------------------------------------
# C source
# ---------------------------------------------------------------------------------------------

def c_identifier(name: str) -> str:
    identifier = re.sub(r"\W", "_", name)
    return identifier if not identifier[:1].isdigit() else f"_{identifier}"


def write_c_array(content: bytes, out_dir: str | Path, name: str,
                  comment: str = "") -> tuple[Path, Path]:
    """Writes ``<name>.h`` and ``<name>.cc``: ``alignas(16) const unsigned char <name>[]`` with
    the model's bytes and ``const unsigned int <name>_len``. Returns (header, source)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    identifier = c_identifier(name)
    guard = f"KWSNB_{identifier.upper()}_H_"
    note = "".join(f"// {line}\n" for line in comment.splitlines())
    header = (f"// {identifier}: TFLite flatbuffer for TensorFlow Lite Micro, written by "
              f"kwsnb.micro.\n{note}#ifndef {guard}\n#define {guard}\n\n"
              f"extern const unsigned char {identifier}[];\n"
              f"extern const unsigned int {identifier}_len;\n\n#endif  // {guard}\n")
    rows = [", ".join(f"0x{byte:02x}" for byte in content[start:start + 12])
            for start in range(0, len(content), 12)]
    source = (f"// {identifier}: TFLite flatbuffer for TensorFlow Lite Micro, written by "
              f"kwsnb.micro.\n{note}#include \"{identifier}.h\"\n\n"
              f"// TFLM reads the flatbuffer in place: keep it {ARRAY_ALIGNMENT}-byte aligned.\n"
              f"alignas({ARRAY_ALIGNMENT}) const unsigned char {identifier}[] = {{\n"
              + "".join(f"    {row},\n" for row in rows)
              + f"}};\nconst unsigned int {identifier}_len = {len(content)};\n")
    header_path, source_path = out_dir / f"{identifier}.h", out_dir / f"{identifier}.cc"
    header_path.write_text(header)
    source_path.write_text(source)
    return header_path, source_path


def read_c_array(source: str | Path) -> bytes:
    """The bytes of the array in a ``.cc`` file written by ``write_c_array`` (checked against
    its ``_len``)."""
    text = Path(source).read_text()
    body = re.search(r"\[\]\s*=\s*\{(.*?)\};", text, re.S)
    length = re.search(r"_len\s*=\s*(\d+)\s*;", text)
    if body is None or length is None:
        raise MicroError(f"{source}: no `const unsigned char name[] = {{...}}` with its `_len`")
    content = bytes(int(value, 16) for value in re.findall(r"0x([0-9a-fA-F]{2})", body.group(1)))
    if len(content) != int(length.group(1)):
        raise MicroError(f"{source}: the array has {len(content)} bytes but _len says "
                         f"{length.group(1)}")
    return content


# ---------------------------------------------------------------------------------------------
# Metadata and README
# ---------------------------------------------------------------------------------------------

def micro_metadata(kind: str, content: bytes, model, labels: Sequence[str] | None,
                   check: Mapping | None = None) -> dict:
    """What firmware needs: I/O with quantization, states, the front end's normalization and
    feature flags, labels, and TFLM's arena."""
    mfcc = streaming.mfcc_of(streaming.front_end_layer(model))
    io = runtime.describe_io(content)
    # Firmware addresses tensors by position (interpreter.input(i) / output(i)), not by name.
    input_positions, output_positions = _io_positions(content)
    for name, spec in io["inputs"].items():
        spec["index"] = input_positions[name]
    for name, spec in io["outputs"].items():
        spec["index"] = output_positions[name]
    metadata = {"format": kind, "labels": list(labels) if labels is not None else None,
                "size_bytes": len(content), "operators": runtime.operator_names(content),
                **io, "feature_flags": dict(mfcc.flags),
                "frame_samples": int(mfcc.frame_samples),
                "packet_samples": int(mfcc.packet_samples),
                "fft_length": int(mfcc.fft_length),
                "coefficient_mean": [float(v) for v in mfcc.coefficient_mean.numpy()],
                "coefficient_scale": [float(v) for v in mfcc.coefficient_scale.numpy()]}
    if kind == STREAM:
        metadata["states"] = [{"name": name, "shape": io["inputs"][name]["shape"],
                               "input": {k: io["inputs"][name][k] for k in ("scale", "zero_point")},
                               "output": {k: io["outputs"][name][k] for k in ("scale", "zero_point")}}
                              for name in stream_state_pairs(content)]
    if check is not None:
        metadata["tflm"] = {k: check[k] for k in ("runs", "arena_bytes", "arena_min_bytes", "error")}
    return metadata


def _readme(name: str, metadata: Mapping[str, Mapping]) -> str:
    first = next(iter(metadata.values()))
    flags = first["feature_flags"]
    dct = flags["dct_num_features"]
    lines = [f"# {name}: keyword spotting for TensorFlow Lite Micro (kwsnb.micro)", "",
             "Two int8 models of the same trained body (weights identical); the MFCC front end",
             "runs in your firmware. Each model is a `.tflite`, a C source/header pair",
             "(`alignas(16) const unsigned char <name>[]`, `const unsigned int <name>_len`) and a",
             "`.json` with everything below in machine-readable form.", "",
             "## Features (computed on the device, both models)", "",
             f"The seed's MFCCs (kws_streaming `mfcc_op`) on {flags['sample_rate']} Hz mono audio in "
             "[-1, 1):",
             f"1. frames of {first['frame_samples']} samples ({flags['window_size_ms']:g} ms) every "
             f"{first['packet_samples']} samples ({flags['window_stride_ms']:g} ms), no padding "
             "(1 s = 49 frames);",
             f"2. periodic Hann window, {first['fft_length']}-point FFT (zero-padded), magnitude |X|"
             + (" (the seed's power spectrum: its Mfcc op takes sqrt(|X|^2));"
                if flags["fft_magnitude_squared"] else ", then sqrt;"),
             f"3. {flags['mel_num_bins']} triangular mel filters "
             f"{flags['mel_lower_edge_hertz']:g}-{flags['mel_upper_edge_hertz']:g} Hz (mel = 1127 "
             "ln(1 + f/700), peak 1, TF Mfcc-op layout: kwsnb.features.mel_weight_matrix);",
             "4. ln(max(mel, 1e-12));",
             f"5. DCT-II scaled by sqrt(2 / {flags['mel_num_bins']}), first {dct} coefficients "
             "(kwsnb.features.dct_matrix);",
             "6. normalize: `x = (mfcc - coefficient_mean) * coefficient_scale` (per coefficient, "
             "in the .json);",
             "7. quantize: `int8 = clip(round(x / scale) + zero_point, -128, 127)` with the model "
             "input's scale and zero point below.", "",
             "coefficient_mean = " + ", ".join(f"{v:.6g}" for v in first["coefficient_mean"]),
             "",
             "coefficient_scale = " + ", ".join(f"{v:.6g}" for v in first["coefficient_scale"]),
             ""]
    for kind, meta in metadata.items():
        ident = c_identifier(f"{name}_{kind}")
        inputs, outputs = meta["inputs"], meta["outputs"]
        tflm = meta.get("tflm", {})
        lines += [f"## {ident} ({meta['size_bytes']} bytes)", ""]
        if tflm:
            lines += [f"TFLM: {'runs' if tflm.get('runs') else 'does not run: ' + str(tflm.get('error'))}"
                      f"; tensor arena: {tflm.get('arena_min_bytes')} bytes is the smallest that "
                      f"works (TFLM's recording allocator reports {tflm.get('arena_bytes')}). "
                      "Ops: "
                      + ", ".join(meta["operators"]) + ".", ""]
        lines.append("Inputs (`interpreter.input(index)`):")
        for input_name, spec in sorted(inputs.items(), key=lambda item: item[1]["index"]):
            lines.append(f"- {spec['index']}: `{input_name}` {spec['dtype']} {spec['shape']}, "
                         f"scale {spec.get('scale')}, zero_point {spec.get('zero_point')}")
        lines.append("")
        lines.append("Outputs (`interpreter.output(index)`):")
        for output_name, spec in sorted(outputs.items(), key=lambda item: item[1]["index"]):
            lines.append(f"- {spec['index']}: `{output_name}` {spec['dtype']} {spec['shape']}, "
                         f"scale {spec.get('scale')}, zero_point {spec.get('zero_point')}")
        if kind == NON_STREAM:
            lines += ["", "One call per second of audio: its "
                      f"{inputs[next(iter(inputs))]['shape'][1]} frames, oldest first."]
        else:
            same = all(s["input"] == s["output"] for s in meta["states"])
            lines += ["", f"One call per frame (every {flags['window_stride_ms']:g} ms): the newest "
                      "frame in `features`. Each `*_state` output is that layer's ring buffer "
                      "after this frame: feed it back as the same-named input on the next call "
                      + ("(same scale and zero point in and out: copy the bytes). "
                         if same else "(requantize: scales differ, see the .json). ")
                      + "Start (or reset) every state filled with its input zero_point (0.0). "
                      "After 49 frames from a reset the logits are the non-stream model's on "
                      "those 49 frames, up to int8 rounding (the two models are calibrated "
                      "separately: docs/micro.md gives the measured agreement)."]
        lines += ["", "Labels (logit order): " + ", ".join(meta["labels"] or []), ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# A train_dir -> C sources
# ---------------------------------------------------------------------------------------------

def representative_audio(flags: Mapping, count: int = convert.REPRESENTATIVE_CLIPS) -> np.ndarray:
    """``count`` unaugmented training clips in a seeded random order (as kwsnb.evaluate
    calibrates its int8 formats)."""
    from kwsnb import data

    try:
        dataset = data.SpeechCommands.from_flags(dict(flags), progress=False)
    except (ValueError, FileNotFoundError) as error:
        raise MicroError(f"int8 calibration needs the training data (data_dir "
                         f"{flags.get('data_dir')!r}): {error}") from None
    batch = dataset.dataset("training", batch_size=count, augment=False, shuffle=True,
                            repeat=False, seed=0)
    audio, _ = next(iter(batch))
    return audio.numpy()


def load_train_dir(train_dir: str | Path):
    """(model, flags) of a train_dir; MicroError naming what is missing."""
    from kwsnb import train as training

    train_dir = Path(train_dir)
    if not train_dir.is_dir():
        raise MicroError(f"{train_dir} is not a folder: give a TRAIN_DIR written by "
                         "`python -m kwsnb.train` (flags.json, best_weights.weights.h5)")
    missing = [name for name in (training.FLAGS_FILE, training.BEST_WEIGHTS)
               if not (train_dir / name).is_file()]
    if missing:
        raise MicroError(f"no trained model in {train_dir}: {' and '.join(missing)} missing "
                         "(train one with `python -m kwsnb.train`)")
    try:
        return training.load_trained_model(train_dir)
    except training.TrainError as error:
        raise MicroError(str(error)) from None


def _current_features_int8(train_dir: Path) -> bytes | None:
    """The train_dir's tflite_features_int8 if it was exported from the current best weights
    (the digest kwsnb.evaluate records) and runs in TFLM; None otherwise."""
    import hashlib

    from kwsnb import train as training

    folder = train_dir / "tflite_features_int8"
    path, metadata = folder / exporting.MODEL_FILE, folder / exporting.METADATA_FILE
    if not path.is_file() or not metadata.is_file():
        return None
    try:
        recorded = json.loads(metadata.read_text()).get("weights_sha256")
    except ValueError:
        return None
    weights = hashlib.sha256((train_dir / training.BEST_WEIGHTS).read_bytes()).hexdigest()
    if recorded != weights:
        return None
    try:  # a cut or foreign file is named and replaced by a fresh conversion, never run
        runtime.read_tflite(path)
    except ExportError as error:
        import warnings

        warnings.warn(f"{error}; converting the features-in model afresh", stacklevel=3)
        return None
    if not tflm_check(path, find_minimum=False)["runs"]:
        return None
    return path.read_bytes()


def export_micro(train_dir: str | Path, out_dir: str | Path, data_dir: str | None = None,
                 clips: int = convert.REPRESENTATIVE_CLIPS, check: bool = True,
                 test_audio: np.ndarray | None = None) -> dict[str, dict]:
    """Writes both features-in int8 models of a train_dir to ``out_dir``: ``<name>_<kind>``
    ``.tflite``, ``.cc``, ``.h`` and ``.json``, and ``README.md``. The non-stream model is the
    train_dir's ``tflite_features_int8`` when it runs in TFLM, converted afresh otherwise; the
    streaming one is converted (calibration on ``clips`` training clips). Returns the metadata
    per kind."""
    if int(clips) != clips or clips < 1:
        raise MicroError(f"--clips must be at least 1 (training clips that calibrate the int8 "
                         f"models), got {clips}")
    model, flags = load_train_dir(train_dir)
    if data_dir is not None:
        flags = {**flags, "data_dir": data_dir}
    name = c_identifier(flags.get("model_name") or Path(train_dir).name)
    labels = list(flags.get("labels") or [])
    audio_cache: list[np.ndarray] = []

    def audio():
        if not audio_cache:
            audio_cache.append(representative_audio(flags, clips))
        return audio_cache[0]

    contents = {}
    current = _current_features_int8(Path(train_dir))
    if current is not None:
        contents[NON_STREAM] = current
    else:
        contents[NON_STREAM] = exporting.convert_features_int8(model, audio())
    contents[STREAM] = convert_stream_features_int8(model, audio(), clips=None)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metadata = {}
    for kind, content in contents.items():
        result = tflm_check(content) if check else None
        meta = micro_metadata(kind, content, model, labels, result)
        ident = c_identifier(f"{name}_{kind}")
        (out_dir / f"{ident}.tflite").write_bytes(content)
        write_c_array(content, out_dir, ident,
                      comment=f"{meta['size_bytes']} bytes; inputs, outputs and states: "
                              f"{ident}.json and README.md")
        meta["files"] = [f"{ident}{suffix}" for suffix in (".tflite", ".cc", ".h", ".json")]
        (out_dir / f"{ident}.json").write_text(json.dumps(meta, indent=2))
        metadata[kind] = meta
    (out_dir / "README.md").write_text(_readme(name, metadata))
    return metadata


def summary_markdown(metadata: Mapping[str, Mapping]) -> str:
    """A Markdown table of ``export_micro``'s models: size, TFLM arena, the MFCC input."""
    rows = ["| model | bytes | TensorFlow Lite Micro | input (int8) | files |",
            "|---|---:|---|---|---|"]
    for kind, meta in metadata.items():
        tflm = meta.get("tflm")
        if tflm is None:
            runs = "not checked (pip install tflite-micro)"
        elif tflm.get("runs"):
            runs = f"runs, arena {tflm['arena_min_bytes'] / 1024:.1f} KB"
        else:
            runs = f"fails: {tflm.get('error')}"
        spec = meta["inputs"][FEATURES_INPUT]
        shape = "x".join(str(d) for d in spec["shape"])
        files = ", ".join(meta.get("files", []))
        rows.append(f"| {kind} | {meta['size_bytes']:,} | {runs} | MFCCs {shape}, scale "
                    f"{spec['scale']:.4g}, zero point {spec['zero_point']} | {files} |")
    return "\n".join(rows)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kwsnb.micro",
        description="Write a trained model's features-in int8 models (non-stream and "
                    "streaming, for TensorFlow Lite Micro) as .tflite and C source/header "
                    "pairs with a README naming inputs, states and labels.")
    parser.add_argument("train_dir", help="a folder written by `python -m kwsnb.train`")
    parser.add_argument("--out", required=True, help="folder to write into")
    parser.add_argument("--data_dir", help="training data for int8 calibration "
                        "[the data_dir of TRAIN_DIR/flags.json]")
    parser.add_argument("--clips", type=int, default=convert.REPRESENTATIVE_CLIPS,
                        help="calibration clips [%(default)s]")
    parser.add_argument("--no_check", action="store_true",
                        help="skip running the models in TFLM (tflite-micro not installed)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        metadata = export_micro(args.train_dir, args.out, args.data_dir, args.clips,
                                check=not args.no_check)
    except (MicroError, ExportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for kind, meta in metadata.items():
        tflm = meta.get("tflm") or {}
        print(f"{kind}: {meta['size_bytes']} bytes"
              + (f", TFLM arena {tflm.get('arena_min_bytes')} bytes" if tflm.get("runs") else
                 f", TFLM: {tflm.get('error')}" if tflm else ""))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
