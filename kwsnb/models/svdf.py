"""svdf: a stack of SVDF layers (kws_streaming's ``models/svdf.py``, END-TO-END STREAMING KEYWORD
SPOTTING, arXiv:1812.02802).

Seed structure at its flags (``dct_num_features`` 40, so MFCC ``[49, 40]``)::

    6 x SVDF(units1 16/32/32/32/64/128, memory 4/10/10/10/10/10, units2 40/40/64/64/64/-,
             ReLU, depthwise bias, no BatchNorm), valid padding: time 49 -> 46 -> 37 -> ... -> 1
    -> Flatten (1 step x 128) -> Dropout(dropout1) -> [Dense(units2, act2) ...] -> Dense(12)

Streaming: **as-is**. The seed streams this model itself. Valid padding shrinks the clip to a
single step whose receptive field is exactly the 49 frames of one second, so after every
20 ms packet the streaming model's output equals the non-stream output on the last second of
audio. ``svdf_pad=1`` (causal) is also supported: then time stays 49 and Flatten streams as a
ring buffer of the last 49 steps (exact from a reset state; see docs/streaming.md).
"""
from __future__ import annotations

import keras
from keras import layers

from kwsnb.layers import SVDF, ModelBuilder
from kwsnb.models.flags import Flags

FLAGS = {
    # The seed command line's feature flags for this model.
    "window_size_ms": 40.0,
    "window_stride_ms": 20.0,
    "mel_num_bins": 80,
    "mel_upper_edge_hertz": 7600.0,
    "dct_num_features": 40,
    "fft_magnitude_squared": True,
    # Architecture flags: one entry per SVDF layer in the svdf_* lists.
    "svdf_memory_size": [4, 10, 10, 10, 10, 10],
    "svdf_units1": [16, 32, 32, 32, 64, 128],
    "svdf_act": ["relu", "relu", "relu", "relu", "relu", "relu"],
    "svdf_units2": [40, 40, 64, 64, 64, -1],  # -1: no output projection
    "svdf_dropout": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    "svdf_pad": False,  # True: causal padding (time stays 49); False: valid (49 -> 1)
    "dropout1": 0.0,
    "units2": [],  # hidden Dense layers after the SVDF stack
    "act2": [],
}

SEED_PARAMS = 32_716
CHANGES = "none: streamable as-is (valid padding, receptive field = 1 s)"


def build_model(flags: dict, mode) -> keras.Model:
    f = Flags("svdf", flags)
    memory_sizes = f.ints("svdf_memory_size")
    count = len(memory_sizes)
    units1 = f.ints("svdf_units1", count)
    activations = [f.activation("svdf_act", a) for a in f.list("svdf_act", count)]
    units2 = [f.int("svdf_units2", minimum=-1, value=u) for u in f.list("svdf_units2", count)]
    if 0 in units2:
        raise f.error("svdf_units2", "use a positive width, or -1 for no projection")
    dropouts = f.rates("svdf_dropout", count)
    hidden_units = f.ints("units2")
    hidden_activations = [f.activation("act2", a) for a in f.list("act2", len(hidden_units))]

    b = ModelBuilder(mode, padding="causal" if f.bool("svdf_pad") else "valid", flags=flags)
    x, t = b.features()
    for i in range(count):
        x, t = b.stream(SVDF(units1=units1[i], memory_size=memory_sizes[i], units2=units2[i],
                             activation=activations[i], dropout=dropouts[i], name=f"svdf_{i}"),
                        x, t, flag="svdf_memory_size")
    x = b.flatten(x, t, name="flatten")
    x = layers.Dropout(f.rate("dropout1"), name="dropout1")(x)
    for i, (units, activation) in enumerate(zip(hidden_units, hidden_activations)):
        x = layers.Dense(units, activation=activation, name=f"dense_{i}")(x)
    logits = layers.Dense(flags["label_count"], name="logits")(x)
    return b.model(logits, name="svdf")
