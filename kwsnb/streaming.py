"""Keras models between modes: non-stream and streaming conversion, the front end split off, and
feeding audio to a streaming model packet by packet.

Conversion rebuilds the model in the other mode from its ``ModelSpec`` (kept by
``kwsnb.models.build``) and copies the weights by layer name; no Keras internals::

    model = kwsnb.models.build("tc_resnet")            # train it, or load its weights
    stream = to_stream_external(model)                 # or to_stream_internal / to_non_stream
    runner = StreamRunner(stream)                      # also takes a TFLite model
    logits = runner.run(audio)                         # one row per 320-sample packet

What "equal" means (docs/streaming.md): for models with valid padding (svdf, tc_resnet,
mobilenet, ...) the output after packet ``n >= 50`` equals the non-stream output on the last
second, ``audio[(n - 50) * 320 : n * 320]``. For causal models (svdf_resnet) the output after the
clip's last packet equals the non-stream output on the clip when the stream starts from
``reset(prime=clip[:320])``.

``split_front_end`` cuts a model at its MFCC layer into a front end (audio -> features) and a body
(features -> logits), the features-in format's graph. Long-audio detection over a stream lives in
``kwsnb.detect``.
"""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from kwsnb import models
from kwsnb.layers import (AUDIO_INPUT, FRONT_END, LOGITS, STATE_NAME, STATE_SUFFIX, Mode,
                          StreamingLayer, reset_states)
from kwsnb.runtime import ExportError


# ---------------------------------------------------------------------------------------------
# Conversion between modes
# ---------------------------------------------------------------------------------------------

def convert(model: keras.Model, mode: Mode | str) -> keras.Model:
    """``model`` rebuilt in ``mode`` (same architecture and flags) with its weights.

    Works between any two modes; streaming modes take one packet per call at batch size 1.
    """
    found = models.spec(model)
    converted = models.build(found.name, mode=mode, **found.flags)
    copy_weights(model, converted)
    return converted


def to_non_stream(model: keras.Model) -> keras.Model:
    """Non-stream inference: raw audio clips ``[batch, samples]`` -> logits."""
    return convert(model, Mode.NON_STREAM_INFERENCE)


def to_stream_internal(model: keras.Model) -> keras.Model:
    """Streaming with internal state: ``[1, 320]`` packet -> logits; ring buffers in variables
    (LiteRT: convert with ``experimental_enable_resource_variables = True``)."""
    return convert(model, Mode.STREAM_INTERNAL_STATE_INFERENCE)


def to_stream_external(model: keras.Model) -> keras.Model:
    """Streaming with external state: inputs ``[packet, *states]`` (``audio``, ``<layer>_state``),
    outputs a dict ``{"logits": ..., "<layer>_state": new state, ...}``."""
    return convert(model, Mode.STREAM_EXTERNAL_STATE_INFERENCE)


def exact_on_last_second(model: keras.Model) -> bool:
    """True when no time layer pads (valid padding throughout): then, from the 50th packet on,
    every stream output equals the non-stream output on the last second of audio. False for
    causal models, which match the non-stream model on a clip fed from a primed reset state."""
    return all(layer.padding != "causal" for layer in model.layers
               if isinstance(layer, StreamingLayer))


def _model_weights(layer: keras.layers.Layer) -> list:
    return [w for w in layer.weights if w.name != STATE_NAME]


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Copies every weight (ring buffers excepted) from ``source`` to ``target`` by layer name."""
    for layer in target.layers:
        wanted = _model_weights(layer)
        if not wanted:
            continue
        try:
            given = _model_weights(source.get_layer(layer.name))
        except ValueError:
            raise ValueError(f"{source.name} has no layer {layer.name!r} to copy weights from; "
                             "were both models built by kwsnb.models.build?") from None
        if [tuple(w.shape) for w in given] != [tuple(w.shape) for w in wanted]:
            raise ValueError(f"layer {layer.name!r}: weights {[tuple(w.shape) for w in given]} "
                             f"do not fit {[tuple(w.shape) for w in wanted]}; the two models "
                             "were built with different flags")
        for variable, value in zip(wanted, given):
            variable.assign(value)


# ---------------------------------------------------------------------------------------------
# Running a stream
# ---------------------------------------------------------------------------------------------

class StreamRunner:
    """Feeds audio to a streaming model one packet at a time and keeps its state.

    ``model``: a Keras streaming model (internal or external state) from ``to_stream_*``, or a
    TFLite model converted from one (bytes, a path, or an ``ai_edge_litert`` Interpreter).
    External states are kept here and fed back on every call; internal ones live in the model.
    """

    def __init__(self, model, num_threads: int = 1):
        if isinstance(model, keras.Model):
            self._backend = _KerasStream(model)
        else:
            self._backend = _TFLiteStream(model, num_threads)
        self.packet_samples = self._backend.packet_samples
        self.reset()

    @property
    def external_state(self) -> bool:
        return self._backend.external

    def reset(self, prime: np.ndarray | None = None) -> None:
        """Starts a fresh stream: every ring buffer zero.

        ``prime``: the first packet of a clip, put straight into the front end's audio buffer
        without running the body. The next packet then yields the clip's first full frame, as
        in the non-stream model, which causal models need to match it exactly (docs/streaming.md).
        """
        self._backend.reset()
        if prime is not None:
            prime = np.asarray(prime, dtype=np.float32).reshape(-1)
            if prime.shape != (self.packet_samples,):
                raise ValueError(f"prime must be one packet of {self.packet_samples} samples, "
                                 f"got {prime.shape[0]}")
            self._backend.prime(prime)

    def step(self, packet: np.ndarray) -> np.ndarray:
        """Feeds one packet (``packet_samples`` samples); returns the logits after it."""
        packet = np.asarray(packet, dtype=np.float32).reshape(1, -1)
        if packet.shape[1] != self.packet_samples:
            raise ValueError(f"a packet is {self.packet_samples} samples, got {packet.shape[1]}")
        return self._backend.step(packet)

    def run(self, audio: np.ndarray) -> np.ndarray:
        """Feeds ``audio`` packet by packet (continuing the current stream); returns the logits
        after each packet, ``[packets, labels]``. A trailing part packet is ignored."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        count = audio.shape[0] // self.packet_samples
        if count == 0:
            raise ValueError(f"audio of {audio.shape[0]} samples is shorter than one packet "
                             f"({self.packet_samples} samples)")
        packets = audio[:count * self.packet_samples].reshape(count, self.packet_samples)
        return np.stack([self.step(packet) for packet in packets])


class _KerasStream:
    def __init__(self, model: keras.Model):
        import tensorflow as tf

        mode = models.spec(model).mode
        if not mode.is_streaming:
            raise ValueError(f"{model.name} is a {mode.value} model; convert it first with "
                             "kwsnb.streaming.to_stream_internal or to_stream_external")
        self.model = model
        self.external = mode == Mode.STREAM_EXTERNAL_STATE_INFERENCE
        self.packet_samples = int(model.inputs[0].shape[1])
        self.state_names = [tensor.name for tensor in model.inputs[1:]]
        self._call = tf.function(lambda inputs: model(inputs, training=False))

    def reset(self):
        if self.external:
            self.states = [np.zeros(tensor.shape, np.float32) for tensor in self.model.inputs[1:]]
        else:
            reset_states(self.model)

    def prime(self, packet: np.ndarray):
        if self.external:
            self.states[self.state_names.index(FRONT_END + STATE_SUFFIX)] = packet[None]
        else:
            self.model.get_layer(FRONT_END).stream_state.assign(packet[None])

    def step(self, packet: np.ndarray) -> np.ndarray:
        if not self.external:
            return np.asarray(self._call(packet))[0]
        outputs = self._call([packet, *self.states])
        self.states = [np.asarray(outputs[name]) for name in self.state_names]
        return np.asarray(outputs[LOGITS])[0]


class _TFLiteStream:
    def __init__(self, model, num_threads: int):
        from ai_edge_litert.interpreter import Interpreter

        if isinstance(model, Interpreter):
            self.interpreter, self._make = model, None
        elif isinstance(model, (bytes, bytearray)):
            content = bytes(model)
            self._make = lambda: Interpreter(model_content=content, num_threads=num_threads)
        else:
            path = str(Path(model))
            self._make = lambda: Interpreter(model_path=path, num_threads=num_threads)
        if self._make is not None:
            self.interpreter = self._make()
        self.runner = self.interpreter.get_signature_runner()
        details = self.runner.get_input_details()
        if AUDIO_INPUT not in details:
            raise ValueError(f"the TFLite model has no {AUDIO_INPUT!r} input (inputs: "
                             f"{', '.join(details)}); convert a kwsnb streaming model")
        self.packet_samples = int(details[AUDIO_INPUT]["shape"][-1])
        self.state_specs = {name: d for name, d in details.items() if name != AUDIO_INPUT}
        self.external = bool(self.state_specs)

    def reset(self):
        self.states = {name: np.zeros(d["shape"], d["dtype"])
                       for name, d in self.state_specs.items()}
        if not self.external:
            # LiteRT's reset_all_variables() leaves resource variables (the ring buffers) as they
            # are (kwsnb.export), so a fresh stream needs a fresh interpreter (~0.5 ms).
            if self._make is None:
                raise ValueError("an internal-state model given as an Interpreter cannot be "
                                 "reset; give its .tflite path or bytes")
            self.interpreter = self._make()
            self.runner = self.interpreter.get_signature_runner()

    def prime(self, packet: np.ndarray):
        if not self.external:
            raise ValueError("an internal-state TFLite model keeps its audio buffer inside; it "
                             "cannot be primed (use the external-state model)")
        self.states[FRONT_END + STATE_SUFFIX] = packet[None]

    def step(self, packet: np.ndarray) -> np.ndarray:
        outputs = self.runner(**{AUDIO_INPUT: packet}, **self.states)
        if self.external:
            self.states = {name: outputs[name] for name in self.state_specs}
            return outputs[LOGITS][0]
        (logits,) = outputs.values()
        return logits[0]


# ---------------------------------------------------------------------------------------------
# Front end and body
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
