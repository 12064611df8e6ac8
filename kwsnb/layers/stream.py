"""Ring-buffer streaming for any layer that looks back over time.

Time is axis 1 everywhere (``[batch, time, ...]``). A *time layer* maps a window of
``kernel_size`` steps (``dilation_rate`` apart) to one output step and moves ``strides`` steps
per output; everything else in a model (Dense, BatchNormalization, activations, Add) works on each
time step on its own and streams as it is.

Non-stream modes (training, non-stream inference) run the layer on the whole clip. With
``padding="valid"`` nothing is padded; with ``padding="causal"`` ``window - 1`` zeros go before
the clip. Either way the strided output grid is *end-anchored*: leading steps are dropped so
that the last output covers the clip's last step (a stream's newest output always does).

Streaming modes feed one step per call (one 20 ms frame; the front end takes a 320-sample
packet). The layer keeps the steps it still needs in a ring buffer and runs on exactly one
window per call. A stride is not applied while streaming: it becomes a dilation. If the input of
a layer advances every ``step`` calls in the non-stream model (the product of the strides before
it), its ring buffer spans ``(window - 1) * step`` calls and the layer reads every ``step``-th
entry, so it emits every 20 ms exactly the output the non-stream model gives for a clip ending
at this call. The cost is compute after the stride (every call instead of every ``step``-th call)
and a longer buffer; the gain is an output every 20 ms with the trained weights unchanged.

Consequences (see docs/streaming.md):
* ``padding="valid"`` everywhere: after the first second, every stream output equals the
  non-stream output on the last second of audio (a sliding window, no reset needed).
* ``padding="causal"`` everywhere: from a reset state (with the audio buffer primed with the
  clip's first packet), the stream output after the clip's last packet equals the non-stream
  output on the clip: zero state plays the role of the zero padding.
* Mixing the two inside one model breaks both, so ``ModelBuilder`` uses one padding per model.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import ops

from kwsnb.layers.modes import Mode

PADDINGS = ("valid", "causal")
STATE_NAME = "stream_state"  # name of every ring-buffer variable (internal-state mode)


def _first(value):
    """Conv/pool configs store sizes as tuples; time is the first entry."""
    if isinstance(value, (tuple, list)):
        return int(value[0])
    return int(value)


@dataclass(frozen=True)
class Timeline:
    """Where a tensor's time steps fall: ``frames`` per clip (non-stream) and ``step`` (stream).

    ``frames``: time steps of this tensor for one clip in non-stream mode (49 for 1 s of MFCC
    frames). ``step``: stream calls (20 ms packets) between two of its time steps in the
    non-stream model, the product of the strides so far. Model code carries a Timeline next to
    each tensor whose time layers change it: ``x, t = builder.stream(layer, x, t)``.
    """

    frames: int
    step: int = 1

    def after(self, kernel_size: int, strides: int = 1, dilation_rate: int = 1,
              padding: str = "valid", what: str = "layer") -> "Timeline":
        """The Timeline after a time layer; ValueError if fewer than one output step is left."""
        geometry = clip_geometry(self.frames, kernel_size, strides, dilation_rate, padding, what)
        return Timeline(frames=geometry.output_frames, step=self.step * int(strides))


@dataclass(frozen=True)
class ClipGeometry:
    """How a time layer handles a whole clip: zeros padded and steps cropped at its start."""

    pad: int
    crop: int
    output_frames: int


def clip_geometry(frames: int, kernel_size: int, strides: int = 1, dilation_rate: int = 1,
                  padding: str = "valid", what: str = "layer") -> ClipGeometry:
    """Padding/cropping that gives an end-anchored output grid (see module docstring)."""
    if padding not in PADDINGS:
        raise ValueError(f"{what}: padding must be one of {PADDINGS}, got {padding!r}")
    for name, value in (("kernel_size", kernel_size), ("strides", strides),
                        ("dilation_rate", dilation_rate)):
        if int(value) != value or value < 1:
            raise ValueError(f"{what}: {name} must be a positive integer, got {value!r}")
    window = dilation_rate * (kernel_size - 1) + 1
    pad = window - 1 if padding == "causal" else 0
    if frames + pad < window:
        raise ValueError(
            f"{what}: a window of {window} steps (kernel {kernel_size}, dilation "
            f"{dilation_rate}) does not fit in the {frames} step(s) left at this point of a "
            f"clip, so the model would have no output; use smaller kernels or strides before "
            f"it, or causal padding")
    crop = (frames + pad - window) % strides  # end-anchored: drop steps at the start
    # Padding then cropping the padded zeros is the same as padding less.
    cancelled = min(pad, crop)
    return ClipGeometry(pad=pad - cancelled, crop=crop - cancelled,
                        output_frames=(frames + pad - window) // strides + 1)


class StreamingLayer(keras.layers.Layer):
    """Base of every time layer: pads/crops whole clips, keeps a ring buffer when streaming.

    Subclasses implement ``window_call(x, training)``: the layer's own computation on a sequence
    with "valid" semantics (no padding of its own) and its stride. They may override
    ``project(x, training)``, a per-step transform applied *before* the ring buffer (SVDF
    buffers its projection, which is smaller than its input), and then ``state_features``.

    Calls: non-stream ``y = layer(x)``; internal state ``y = layer(x)`` (the buffer is the
    variable ``stream_state``); external state ``y, new_state = layer(x, state)`` with
    ``state`` shaped ``state_shape(x.shape)``. Layers whose window is a single step keep no
    state (``state_shape`` is None) and are called as in non-stream mode.

    ``mode``, ``step`` and ``padding`` are usually set by ``ModelBuilder.stream``; pass them to
    use the layer on its own.
    """

    def __init__(self, kernel_size: int, strides: int = 1, dilation_rate: int = 1,
                 packet: int = 1, mode: Mode | str | None = None, step: int | None = None,
                 padding: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.dilation_rate = int(dilation_rate)
        self.packet = int(packet)
        self.mode = None if mode is None else Mode.parse(mode)
        self.step = None if step is None else int(step)
        self.padding = padding
        for key in ("kernel_size", "strides", "dilation_rate", "packet"):
            if getattr(self, key) < 1:
                raise ValueError(f"{self.name}: {key} must be >= 1, got {getattr(self, key)}")
        if self.packet > 1 and self.packet != self.strides:
            raise ValueError(f"{self.name}: a layer fed {self.packet} steps per call must have "
                             f"strides == {self.packet}, got {self.strides}")

    # -- configuration -------------------------------------------------------------------------

    def bind(self, mode: Mode | str, step: int, padding: str) -> None:
        """Sets mode, input step and padding before the layer is built (``ModelBuilder`` does)."""
        if self.built:
            raise RuntimeError(f"{self.name}: bind() must come before the layer is called")
        wanted = {"mode": Mode.parse(mode), "step": int(step), "padding": padding}
        for key, value in wanted.items():
            current = getattr(self, key)
            if current is not None and current != value:
                raise ValueError(f"{self.name}: {key} was set to {current!r} but the model "
                                 f"builds it with {value!r}")
            setattr(self, key, value)
        if self.packet > 1 and self.step != 1:
            raise ValueError(f"{self.name}: a layer fed {self.packet} steps per call must come "
                             "first (step 1)")
        if padding not in PADDINGS:
            raise ValueError(f"{self.name}: padding must be one of {PADDINGS}, got {padding!r}")

    def _settings(self) -> tuple[Mode, int, str]:
        return (self.mode or Mode.TRAINING, self.step or 1, self.padding or "valid")

    @property
    def window(self) -> int:
        """Input steps one output step needs."""
        return self.dilation_rate * (self.kernel_size - 1) + 1

    @property
    def buffer_length(self) -> int:
        """Entries in the streaming ring buffer (one entry per call)."""
        _, step, _ = self._settings()
        if self.packet > 1:
            return self.window - self.packet
        return (self.window - 1) * step

    def state_features(self, input_shape) -> tuple:
        """Shape of one buffered step (without batch and time); the projection's if any."""
        return tuple(input_shape[2:])

    def state_shape(self, input_shape) -> tuple | None:
        """Shape of the ring buffer for an input of ``input_shape``, or None if stateless."""
        if self.buffer_length == 0:
            return None
        return (int(input_shape[0] or 1), self.buffer_length) + self.state_features(input_shape)

    # -- computation ---------------------------------------------------------------------------

    def project(self, inputs, training=None):
        """Per-step transform applied before buffering; identity by default."""
        return inputs

    def window_call(self, inputs, training=None):
        raise NotImplementedError(f"{type(self).__name__} must implement window_call")

    def build(self, input_shape):
        mode, _, _ = self._settings()
        if mode == Mode.STREAM_INTERNAL_STATE_INFERENCE:
            shape = self.state_shape(input_shape)
            if shape is not None:
                self.stream_state = self.add_weight(
                    shape=shape, initializer="zeros", trainable=False, name=STATE_NAME)
        super().build(input_shape)

    def call(self, inputs, state=None, training=None):
        mode, step, padding = self._settings()
        steps = self.project(inputs, training=training)
        if not mode.is_streaming:
            geometry = clip_geometry(steps.shape[1], self.kernel_size, self.strides,
                                     self.dilation_rate, padding, what=self.name)
            if geometry.pad:
                widths = [(0, 0)] * len(steps.shape)
                widths[1] = (geometry.pad, 0)
                steps = ops.pad(steps, widths)
            if geometry.crop:
                steps = steps[:, geometry.crop:]
            return self.window_call(steps, training=training)

        if steps.shape[1] != self.packet:
            raise ValueError(f"{self.name}: in streaming mode each call takes {self.packet} "
                             f"time step(s), got input shape {tuple(inputs.shape)}")
        if self.buffer_length == 0:
            return self.window_call(steps, training=training)
        if mode == Mode.STREAM_INTERNAL_STATE_INFERENCE:
            state = self.stream_state
        elif state is None:
            raise ValueError(f"{self.name}: external-state streaming needs its state as the "
                             "second argument: y, new_state = layer(x, state)")
        buffered = ops.concatenate([ops.cast(state, steps.dtype), steps], axis=1)
        new_state = buffered[:, -self.buffer_length:]
        window = buffered[:, ::step] if step > 1 else buffered
        outputs = self.window_call(window, training=training)
        if mode == Mode.STREAM_INTERNAL_STATE_INFERENCE:
            self.stream_state.assign(new_state)
            return outputs
        return outputs, new_state

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size, "strides": self.strides,
                "dilation_rate": self.dilation_rate, "packet": self.packet,
                "mode": None if self.mode is None else self.mode.value, "step": self.step,
                "padding": self.padding}


@keras.saving.register_keras_serializable(package="kwsnb")
class Stream(StreamingLayer):
    """Wraps a Keras time layer (``cell``) so it streams; the cell runs unchanged in every mode.

    ``cell`` works along axis 1 with ``padding="valid"`` (Conv1D, DepthwiseConv1D,
    SeparableConv1D, MaxPooling1D, AveragePooling1D, the MFCC front end, ...). Its kernel size,
    strides and dilation are read from its config (``kernel_size`` or ``pool_size``); give them
    here for cells without them (Flatten over the whole clip: ``kernel_size=strides=frames``).
    The wrapper takes the cell's name unless ``name`` is given.
    """

    def __init__(self, cell: keras.layers.Layer, kernel_size: int | None = None,
                 strides: int | None = None, dilation_rate: int | None = None, packet: int = 1,
                 name: str | None = None, **kwargs):
        config = cell.get_config()
        if config.get("padding", "valid") != "valid":
            raise ValueError(f"{cell.name}: wrap cells built with padding='valid'; the Stream "
                             f"wrapper pads (got padding={config['padding']!r})")
        if kernel_size is None:
            size = config.get("kernel_size", config.get("pool_size"))
            if size is None:
                raise ValueError(f"{cell.name}: {type(cell).__name__} has no kernel_size or "
                                 "pool_size; pass kernel_size (and strides) to Stream")
            kernel_size = _first(size)
        if strides is None:
            strides = _first(config["strides"]) if config.get("strides") is not None else 1
        if dilation_rate is None:
            dilation_rate = _first(config.get("dilation_rate", 1))
        super().__init__(kernel_size=kernel_size, strides=strides, dilation_rate=dilation_rate,
                         packet=packet, name=name or cell.name, **kwargs)
        self.cell = cell

    def build(self, input_shape):
        if not self.cell.built:
            self.cell.build(tuple(input_shape[:1]) + (None,) + tuple(input_shape[2:]))
        super().build(input_shape)

    def window_call(self, inputs, training=None):
        return self.cell(inputs, training=training)

    def get_config(self):
        config = super().get_config()
        config["cell"] = keras.saving.serialize_keras_object(self.cell)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["cell"] = keras.saving.deserialize_keras_object(config["cell"])
        return cls(**config)


def state_variables(model: keras.Model) -> list:
    """The ring-buffer variables of an internal-state streaming model."""
    return [v for v in model.non_trainable_variables if v.name == STATE_NAME]


def reset_states(model: keras.Model) -> None:
    """Zeroes every ring buffer of an internal-state streaming model (a fresh stream)."""
    for variable in state_variables(model):
        variable.assign(ops.zeros(variable.shape, dtype=variable.dtype))
