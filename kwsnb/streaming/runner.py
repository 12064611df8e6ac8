"""The one stream runner: a streaming model fed one packet (or frame) at a time, its states fed
back by one rule, whatever runs it.

Backends (``StreamRunner(model)``):

* a Keras streaming model (``to_stream_internal`` / ``to_stream_external``): external states are
  kept here as float arrays, internal ones live in the model's variables. Long inputs to an
  external-state model run as one TensorFlow graph per chunk of packets (a ``tf.while_loop``
  carrying the states), ~15x faster than one call per packet.
* any runner of a converted model that speaks by signature name with values as stored (int8 as
  int8): ``inputs`` and ``outputs`` (details by name: ``shape``, ``dtype`` and the quantization
  as LiteRT or TFLite Micro report it) and ``run(feeds) -> outputs``; ``fresh()`` when the state
  lives in variables (a resource variable is reset only by a new interpreter).
  ``kwsnb.tflite.runtime.TFLiteModel`` (LiteRT) and ``kwsnb.micro.TFLMRunner`` are such runners.

**The state rule.** A state output goes back into its input as stored when both have the same
dtype, scale and zero point (what the converter gives a state that is a slice of a concatenation
with it, and what ``kwsnb.tflite.quantize`` forces); otherwise it is dequantized with the
output's parameters and quantized with the input's. Fresh states are zeros (the zero point).

Packets and logits are float (quantized and dequantized here) unless ``raw=True``, where they are
taken and returned as stored: the features-in int8 models of ``kwsnb.micro`` are fed int8 MFCC
frames and compared by their int8 logits.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from kwsnb.layers import AUDIO_INPUT, FRONT_END, LOGITS, STATE_SUFFIX, Mode, reset_states

FEATURES_INPUT = "features"  # the int8 MFCC input of the features-in models (kwsnb.micro)
GRAPH_CHUNK_PACKETS = 1000  # packets per TensorFlow graph call (progress granularity)


# ---------------------------------------------------------------------------------------------
# Quantization of one tensor, as every runtime reports it
# ---------------------------------------------------------------------------------------------

def quantization(details: Mapping) -> tuple[float, int] | None:
    """(scale, zero_point) of a tensor's details (LiteRT's ``quantization`` pair, TFLite Micro's
    ``quantization_parameters`` or ``kwsnb.tflite.runtime.describe_io``'s ``scale`` and
    ``zero_point``), or None for a float tensor."""
    if np.dtype(details["dtype"]) == np.float32:
        return None
    if "scale" in details:
        scale, zero_point = details["scale"], details["zero_point"]
    elif "quantization" in details:
        scale, zero_point = details["quantization"]
    else:
        parameters = details.get("quantization_parameters", {})
        scales, zero_points = parameters.get("scales"), parameters.get("zero_points")
        if scales is None or not len(scales):
            return None
        scale, zero_point = scales[0], zero_points[0]
    return (float(scale), int(zero_point)) if scale else None


def quantize(values: np.ndarray, details: Mapping) -> np.ndarray:
    """Float values as the tensor stores them (rounded, clipped to its integer type)."""
    dtype = np.dtype(details["dtype"])
    found = quantization(details)
    if found is None:
        return np.asarray(values).astype(dtype)
    scale, zero_point = found
    info = np.iinfo(dtype)
    return np.clip(np.round(np.asarray(values, np.float32) / scale) + zero_point,
                   info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, details: Mapping) -> np.ndarray:
    """A tensor's stored values as float32."""
    found = quantization(details)
    if found is None:
        return np.asarray(values).astype(np.float32)
    scale, zero_point = found
    return (np.asarray(values, np.float32) - zero_point) * scale


def feed_back(values: np.ndarray, source: Mapping, target: Mapping) -> np.ndarray:
    """The state rule: a state output (``source`` details) as its input (``target``) takes it."""
    same = (np.dtype(source["dtype"]) == np.dtype(target["dtype"])
            and quantization(source) == quantization(target))
    return values if same else quantize(dequantize(values, source), target)


def zero_state(details: Mapping) -> np.ndarray:
    return quantize(np.zeros(details["shape"], np.float32), details)


# ---------------------------------------------------------------------------------------------
# The Keras backend
# ---------------------------------------------------------------------------------------------

class KerasBackend:
    """A Keras streaming model as a runner by name (float values)."""

    def __init__(self, model):
        import tensorflow as tf

        from kwsnb import models

        found = models.spec(model)
        mode = found.mode
        if not mode.is_streaming:
            raise ValueError(f"{model.name} is a {mode.value} model; convert it first with "
                             "kwsnb.streaming.to_stream_internal or to_stream_external")
        self.model = model
        self.external = mode == Mode.STREAM_EXTERNAL_STATE_INFERENCE
        self.inputs = {tensor.name: {"shape": tuple(tensor.shape), "dtype": np.float32}
                       for tensor in model.inputs}
        self.outputs = {name: {"shape": tuple(self.inputs[name]["shape"]), "dtype": np.float32}
                        for name in list(self.inputs)[1:]}
        self.outputs[LOGITS] = {"shape": (1, int(found.flags["label_count"])), "dtype": np.float32}
        self._input_names = list(self.inputs)
        self._call = tf.function(lambda inputs: model(inputs, training=False))
        self._run_packets = self._graph_loop(tf) if self.external else None

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self.external:
            return {LOGITS: np.asarray(self._call(feeds[self._input_names[0]]))}
        outputs = self._call([feeds[name] for name in self._input_names])
        return {name: np.asarray(value) for name, value in outputs.items()}

    def fresh(self) -> "KerasBackend":
        reset_states(self.model)
        return self

    def prime(self, packet: np.ndarray) -> None:
        """Internal state: the front end's audio buffer set to ``packet`` (see StreamRunner)."""
        self.model.get_layer(FRONT_END).stream_state.assign(packet[None])

    def run_packets(self, packets: np.ndarray, states: dict[str, np.ndarray]):
        """Logits after each packet and the last states, in one graph call per chunk."""
        names = self._input_names[1:]
        values = [states[name] for name in names]
        logits = []
        for first in range(0, len(packets), GRAPH_CHUNK_PACKETS):
            chunk, values = self._run_packets(packets[first:first + GRAPH_CHUNK_PACKETS], *values)
            logits.append(chunk.numpy())
        return np.concatenate(logits), {name: np.asarray(v) for name, v in zip(names, values)}

    def _graph_loop(self, tf):
        model, names = self.model, self._input_names[1:]
        packet_samples = int(self.inputs[self._input_names[0]]["shape"][1])
        shapes = [self.inputs[name]["shape"] for name in names]

        @tf.function(input_signature=[tf.TensorSpec([None, packet_samples], tf.float32)]
                     + [tf.TensorSpec(shape, tf.float32) for shape in shapes])
        def run_packets(packets, *states):
            count = tf.shape(packets)[0]

            def step(i, logits, states):
                outputs = model([packets[i][tf.newaxis], *states], training=False)
                return i + 1, logits.write(i, outputs[LOGITS][0]), [outputs[n] for n in names]

            _, logits, states = tf.while_loop(
                lambda i, *_: i < count, step,
                [tf.constant(0), tf.TensorArray(tf.float32, size=count), list(states)])
            return logits.stack(), states

        return run_packets


# ---------------------------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------------------------

class StreamRunner:
    """Feeds a streaming model one packet at a time and keeps its state (module docstring).

    ``packet_input``, ``logits_output``, ``state_pairs`` ([(input, output), ...]) and
    ``audio_state`` (the front end's audio buffer, which ``reset(prime=...)`` fills) come from a
    format's metadata.json where there is one; by default the packet input is ``audio`` (or
    ``features``, or the only input), the logits output ``logits`` (or the only output), each
    other input is a state fed by the output of the same name (kwsnb's naming) and the audio
    buffer is ``mfcc_state``.
    """

    def __init__(self, model, *, packet_input: str | None = None,
                 logits_output: str | None = None,
                 state_pairs: Sequence[tuple[str, str]] | None = None,
                 audio_state: str | None = None, raw: bool = False):
        import keras

        self.backend = KerasBackend(model) if isinstance(model, keras.Model) else model
        inputs, outputs = self.backend.inputs, self.backend.outputs
        if packet_input is None:
            known = [name for name in (AUDIO_INPUT, FEATURES_INPUT) if name in inputs]
            packet_input = known[0] if known else next(iter(inputs))
        if logits_output is None:
            logits_output = LOGITS if LOGITS in outputs else next(iter(outputs))
        if state_pairs is None:
            state_pairs = [(name, name) for name in inputs if name != packet_input]
        state_pairs = [tuple(pair) for pair in state_pairs]
        missing = sorted(({packet_input, *(i for i, _ in state_pairs)} - set(inputs))
                         | ({logits_output, *(o for _, o in state_pairs)} - set(outputs)))
        if missing:
            raise ValueError(f"the streaming model has no input/output named {missing} (inputs "
                             f"{list(inputs)}, outputs {list(outputs)}); is it a kwsnb "
                             "streaming model?")
        self.packet_input, self.logits_output = packet_input, logits_output
        self.state_pairs = state_pairs
        self.audio_state = audio_state or FRONT_END + STATE_SUFFIX
        self.raw = raw
        self.packet_shape = tuple(int(d) for d in inputs[packet_input]["shape"])
        self.packet_samples = int(np.prod(self.packet_shape[1:]))
        self.label_count = int(outputs[logits_output]["shape"][-1])
        self.reset()

    @property
    def external_state(self) -> bool:
        return bool(self.state_pairs)

    def reset(self, prime: np.ndarray | None = None) -> None:
        """Starts a fresh stream: every state zero.

        ``prime``: the first packet of a clip, put straight into the front end's audio buffer
        without running the body. The next packet then yields the clip's first full frame, as in
        the non-stream model, which causal models need to match it exactly (docs/streaming.md).
        """
        inputs = self.backend.inputs
        self.states = {name: zero_state(inputs[name]) for name, _ in self.state_pairs}
        if not self.state_pairs:
            if not hasattr(self.backend, "fresh"):
                raise ValueError("this internal-state model cannot be reset; give its .tflite "
                                 "path or bytes")
            self.backend = self.backend.fresh()
        if prime is not None:
            self._prime(np.asarray(prime, dtype=np.float32).reshape(-1))

    def _prime(self, packet: np.ndarray) -> None:
        if packet.shape != (self.packet_samples,):
            raise ValueError(f"prime must be one packet of {self.packet_samples} samples, "
                             f"got {packet.shape[0]}")
        audio_state = self.audio_state
        if self.state_pairs:
            if audio_state not in self.states:
                raise ValueError(f"the model has no {audio_state!r} state to prime")
            details = self.backend.inputs[audio_state]
            length = int(details["shape"][-1])
            self.states[audio_state] = quantize(packet[None, -length:], details)
        elif hasattr(self.backend, "prime"):
            self.backend.prime(packet)
        else:
            raise ValueError("an internal-state TFLite model keeps its audio buffer inside; it "
                             "cannot be primed (use the external-state model)")

    def step(self, packet: np.ndarray) -> np.ndarray:
        """Feeds one packet; returns the logits after it."""
        details = self.backend.inputs[self.packet_input]
        packet = np.asarray(packet)
        if packet.size != self.packet_samples:
            raise ValueError(f"a packet is {self.packet_samples} samples, got {packet.size}")
        packet = packet.reshape(self.packet_shape)
        feeds = {self.packet_input: packet if self.raw else quantize(packet, details)}
        feeds.update(self.states)
        outputs = self.backend.run(feeds)
        inputs, output_details = self.backend.inputs, self.backend.outputs
        self.states = {name: feed_back(outputs[output], output_details[output], inputs[name])
                       for name, output in self.state_pairs}
        logits = outputs[self.logits_output][0]
        return logits if self.raw else dequantize(logits, output_details[self.logits_output])

    def run(self, signal: np.ndarray, progress=None) -> np.ndarray:
        """Feeds ``signal`` step by step, continuing the current stream; returns the logits after
        each step, ``[steps, labels]``. ``signal``: 1-D audio (a trailing part packet is
        ignored) or ``[steps, ...]`` one packet or frame per row. ``progress``: a tqdm bar to
        update with the steps done."""
        signal = np.asarray(signal)
        if signal.ndim == 1:
            count = signal.shape[0] // self.packet_samples
            if count == 0:
                raise ValueError(f"audio of {signal.shape[0]} samples is shorter than one packet "
                                 f"({self.packet_samples} samples)")
            signal = signal[:count * self.packet_samples].reshape(count, self.packet_samples)
        if isinstance(self.backend, KerasBackend) and self.backend.external and len(signal) > 1:
            logits, self.states = self.backend.run_packets(signal.astype(np.float32), self.states)
            if progress is not None:
                progress.update(len(signal))
            return logits
        logits = []
        for packet in signal:
            logits.append(self.step(packet))
            if progress is not None:
                progress.update(1)
        return np.stack(logits)

    def run_clips(self, clips: np.ndarray, prime: bool = False, every_step: bool = False,
                  progress: bool = False) -> np.ndarray:
        """Each clip streamed from a fresh stream (``reset``): the logits after its last step,
        ``[clips, labels]`` (or after every step, ``[clips, steps, labels]``). ``prime``: start
        with the clip's first packet in the audio buffer and feed the rest (exactly the
        non-stream frames)."""
        results = []
        for clip in _progress(clips, progress, "stream"):
            clip = np.asarray(clip)
            if clip.ndim == 1:
                count = clip.shape[0] // self.packet_samples
                clip = clip[:count * self.packet_samples].reshape(count, self.packet_samples)
            self.reset(prime=clip[0] if prime else None)
            steps = clip[1:] if prime else clip
            logits = np.stack([self.step(packet) for packet in steps])
            results.append(logits if every_step else logits[-1])
        return np.stack(results)


def _progress(items, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="clip", leave=False)
