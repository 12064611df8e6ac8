"""Streaming building blocks shared by every architecture.

``Mode``            the four modes a model is built in (training, non-stream, two streaming ones)
``Timeline``        frames per clip and stream step of a tensor, for shape bookkeeping
``StreamingLayer``  base of time layers: clip padding/cropping, ring buffer when streaming
``Stream``          wraps any Keras time layer (Conv1D, pooling, the MFCC front end, ...)
``SVDF``            kws_streaming's SVDF layer
``ModelBuilder``    writes an architecture once for all modes (front end, states, model)
``reset_states``    zeroes the ring buffers of an internal-state streaming model
``blocks``          batch normalization + activation, the classification head (dropout, logits)

docs/streaming.md explains how to write an architecture with these.
"""
from kwsnb.layers.builder import AUDIO_INPUT, FRONT_END, LOGITS, STATE_SUFFIX, ModelBuilder
from kwsnb.layers.modes import Mode
from kwsnb.layers.stream import (
    PADDINGS,
    STATE_NAME,
    ClipGeometry,
    Stream,
    StreamingLayer,
    Timeline,
    clip_geometry,
    reset_states,
    state_variables,
)
from kwsnb.layers.svdf import SVDF

__all__ = [
    "AUDIO_INPUT", "FRONT_END", "LOGITS", "PADDINGS", "STATE_NAME", "STATE_SUFFIX", "SVDF",
    "ClipGeometry", "Mode", "ModelBuilder", "Stream", "StreamingLayer", "Timeline",
    "clip_geometry", "reset_states", "state_variables",
]
