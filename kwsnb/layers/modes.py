"""The four modes every kwsnb model can be built in.

A model is written once, as a builder ``f(flags, mode)``; the mode decides only how its time
layers see time (whole clips, or one 20 ms packet per call with a ring buffer) and where their
ring buffers live. Layer names and weights are the same in every mode, so converting a model is
"build it in the other mode and copy the weights by layer name" (``kwsnb.streaming``).
"""
from __future__ import annotations

import enum


class Mode(str, enum.Enum):
    """How a model sees time.

    TRAINING / NON_STREAM_INFERENCE: raw audio clips ``[batch, samples]`` in, logits out; time
        layers pad or crop the whole clip (the graphs of the two are identical; TRAINING is the
        default and what ``fit`` uses).
    STREAM_INTERNAL_STATE_INFERENCE: one packet ``[1, 320]`` per call; every time layer keeps its
        ring buffer in a non-trainable variable it updates on each call (TFLite: resource
        variables).
    STREAM_EXTERNAL_STATE_INFERENCE: one packet per call; each ring buffer is an extra model input
        ``<layer>_state`` and its updated value an extra output, in the same order; the caller
        feeds the outputs back on the next call (the form microcontrollers and most TFLite
        runtimes prefer).
    """

    TRAINING = "training"
    NON_STREAM_INFERENCE = "non_stream_inference"
    STREAM_INTERNAL_STATE_INFERENCE = "stream_internal_state_inference"
    STREAM_EXTERNAL_STATE_INFERENCE = "stream_external_state_inference"

    @property
    def is_streaming(self) -> bool:
        return self in (Mode.STREAM_INTERNAL_STATE_INFERENCE, Mode.STREAM_EXTERNAL_STATE_INFERENCE)

    @classmethod
    def parse(cls, value: "Mode | str") -> "Mode":
        """Accepts a Mode, its value (``"stream_internal_state_inference"``) or its name."""
        if isinstance(value, cls):
            return value
        for mode in cls:
            if value in (mode.value, mode.name):
                return mode
        raise ValueError(f"unknown mode {value!r}; use one of: "
                         + ", ".join(mode.value for mode in cls))
