"""ModelBuilder: writes an architecture once for all four modes.

An architecture's ``build_model(flags, mode)`` makes a ``ModelBuilder``, asks it for the
front end, routes every time layer through ``builder.stream`` and finishes with
``builder.model``. Everything else is plain Keras. Sketch (see docs/streaming.md)::

    b = ModelBuilder(mode, padding="valid", flags=flags)
    x, t = b.features()                                  # raw audio -> MFCC [batch, 49, dct]
    x, t = b.stream(layers.Conv1D(32, 3, strides=2, padding="valid", name="conv1"), x, t,
                    flag="cnn1_strides")
    x = layers.BatchNormalization(name="conv1_bn")(x)    # per-step layers: as they are
    x = b.global_average(x, t, name="average")           # whole clip -> [batch, channels]
    return b.model(layers.Dense(flags["label_count"], name="logits")(x), name="mobilenet")

The builder owns the audio input (``[batch, clip samples]``, or ``[1, 320]`` when streaming),
the mode and padding of every time layer, the ``Timeline`` arithmetic (so impossible flags fail
with an error naming the flag before Keras sees a shape), and, in external-state mode, the state
inputs and outputs.
"""
from __future__ import annotations

import keras

from kwsnb.features import MFCC, frame_samples, num_frames, packet_samples
from kwsnb.layers.modes import Mode
from kwsnb.layers.stream import PADDINGS, Stream, StreamingLayer, Timeline

AUDIO_INPUT = "audio"      # name of the raw-audio input of every model
FRONT_END = "mfcc"         # name of the front-end layer (its ring buffer holds raw audio)
STATE_SUFFIX = "_state"    # external-state inputs are named <layer name>_state
LOGITS = "logits"          # external-state models output {"logits": ..., "<layer>_state": ...}


class ModelBuilder:
    """Shared plumbing of all architectures; see the module docstring."""

    def __init__(self, mode: Mode | str, *, padding: str, flags: dict):
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        self.mode = Mode.parse(mode)
        self.padding = padding
        self.flags = flags
        self.feature_flags = {key: flags[key] for key in (
            "sample_rate", "window_size_ms", "window_stride_ms", "fft_magnitude_squared",
            "mel_num_bins", "mel_lower_edge_hertz", "mel_upper_edge_hertz", "dct_num_features")}
        self.clip_samples = int(round(flags["sample_rate"] * flags["clip_duration_ms"] / 1000))
        self.packet_samples = packet_samples(flags["sample_rate"], flags["window_stride_ms"])
        self.frame_samples = frame_samples(flags["sample_rate"], flags["window_size_ms"])
        self.audio = None
        self.trail: list[str] = []  # "<frames> after <layer> (<flag>)", for error messages
        self.state_inputs: list = []
        self.state_outputs: list = []

    # -- inputs ----------------------------------------------------------------------------------

    def features(self):
        """The raw-audio input and the MFCC front end: returns ``(frames, Timeline)``.

        Non-stream: ``[batch, clip samples] -> [batch, 49, dct]``. Streaming: one packet
        ``[1, 320]`` per call; a ring buffer of the previous 320 samples makes the 640-sample
        window of one new frame ``[1, 1, dct]``.
        """
        frames = num_frames(self.clip_samples, self.flags["sample_rate"],
                            self.flags["window_size_ms"], self.flags["window_stride_ms"])
        if frames < 1:
            raise ValueError(f"clip_duration_ms={self.flags['clip_duration_ms']} is shorter than "
                             f"one window (window_size_ms={self.flags['window_size_ms']})")
        if self.mode.is_streaming:
            self.audio = keras.Input(batch_shape=(1, self.packet_samples), name=AUDIO_INPUT)
        else:
            self.audio = keras.Input(shape=(self.clip_samples,), name=AUDIO_INPUT)
        front_end = Stream(MFCC(**self.feature_flags, name=FRONT_END),
                           kernel_size=self.frame_samples, strides=self.packet_samples,
                           packet=self.packet_samples)
        # Audio is framed as the seed frames it, without padding, whatever the body's padding.
        front_end.bind(self.mode, step=1, padding="valid")
        self.trail.append(f"{frames} after {FRONT_END}")
        return self._call(front_end, self.audio), Timeline(frames=frames, step=1)

    # -- time layers -----------------------------------------------------------------------------

    def stream(self, layer: keras.layers.Layer, x, timeline: Timeline, *, flag: str | None = None):
        """Applies a time layer in this builder's mode: returns ``(output, Timeline)``.

        ``layer`` is a StreamingLayer (e.g. SVDF) or a plain Keras time layer built with
        ``padding="valid"`` (Conv1D, DepthwiseConv1D, MaxPooling1D, ...), which gets wrapped in
        ``Stream``. ``flag`` names the flag that set this layer's kernel/strides: an impossible
        value raises ValueError naming it, before Keras builds anything.
        """
        if not isinstance(layer, StreamingLayer):
            layer = Stream(layer)
        try:
            after = timeline.after(layer.kernel_size, layer.strides, layer.dilation_rate,
                                   self.padding, what=f"layer {layer.name!r}")
        except ValueError as error:
            history = "; steps per clip so far: " + ", ".join(self.trail)
            raise ValueError(f"{flag or layer.name}: {error}{history}") from None
        if after.frames != timeline.frames or flag:
            self.trail.append(f"{after.frames} after {layer.name}"
                              + (f" ({flag})" if flag else ""))
        layer.bind(self.mode, step=timeline.step, padding=self.padding)
        return self._call(layer, x), after

    def global_average(self, x, timeline: Timeline, *, name: str):
        """Average over the whole clip: ``[batch, time, channels] -> [batch, channels]``.

        Streams as a ring buffer of the clip's last ``timeline.frames`` steps (read every
        ``timeline.step`` calls), so each output is the average the non-stream model computes
        on the second of audio ending at this packet.
        """
        return self._whole_clip(keras.layers.GlobalAveragePooling1D(name=name), x, timeline)

    def flatten(self, x, timeline: Timeline, *, name: str):
        """Concatenates the clip's ``timeline.frames`` steps: ``[batch, frames * channels]``."""
        return self._whole_clip(keras.layers.Flatten(name=name), x, timeline)

    def crop_to(self, x, timeline: Timeline, target: Timeline, *, name: str):
        """Drops the oldest steps of ``x`` so it lines up with a tensor on ``target``.

        For residual connections around valid-padded layers: steps are end-aligned, so the
        shortcut keeps its last ``target.frames`` steps. Streaming tensors hold one step and
        already line up; then ``x`` is returned as it is.
        """
        if timeline.step != target.step:
            raise ValueError(f"{name}: cannot line up steps every {timeline.step} calls with "
                             f"steps every {target.step} calls; give both branches the same "
                             "strides")
        extra = timeline.frames - target.frames
        if extra < 0:
            raise ValueError(f"{name}: the shortcut has fewer steps ({timeline.frames}) than the "
                             f"branch it joins ({target.frames})")
        if self.mode.is_streaming or extra == 0:
            return x
        return keras.layers.Cropping1D((extra, 0), name=name)(x)

    # -- the model -------------------------------------------------------------------------------

    def model(self, outputs, *, name: str) -> keras.Model:
        """The Keras model: audio in, ``outputs`` out.

        External-state models take ``[audio, *states]`` and return a dict: ``"logits"`` and each
        new state under its input's name (TFLite signatures keep these names, so runtimes can
        pair every state output with its input).
        """
        if self.audio is None:
            raise RuntimeError("call features() first: every kwsnb model starts from raw audio")
        if self.mode == Mode.STREAM_EXTERNAL_STATE_INFERENCE:
            new_states = {state.name: new for state, new in zip(self.state_inputs,
                                                                self.state_outputs)}
            return keras.Model([self.audio, *self.state_inputs],
                               {LOGITS: outputs, **new_states}, name=name)
        return keras.Model(self.audio, outputs, name=name)

    # -- internals -------------------------------------------------------------------------------

    def _whole_clip(self, cell, x, timeline: Timeline):
        layer = Stream(cell, kernel_size=timeline.frames, strides=timeline.frames)
        layer.bind(self.mode, step=timeline.step, padding=self.padding)
        return self._call(layer, x)

    def _call(self, layer: StreamingLayer, x):
        shape = layer.state_shape(x.shape)
        if self.mode != Mode.STREAM_EXTERNAL_STATE_INFERENCE or shape is None:
            return layer(x)
        state = keras.Input(batch_shape=shape, name=layer.name + STATE_SUFFIX)
        outputs, new_state = layer(x, state)
        self.state_inputs.append(state)
        self.state_outputs.append(new_state)
        return outputs
