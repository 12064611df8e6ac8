"""mobilenet: a reduced MobileNet over time (kws_streaming's ``models/mobilenet.py``; MobileNets,
arXiv:1704.04861).

Seed structure at its flags (``dct_num_features`` 40, MFCCs as channels of ``[49, 1, 40]``)::

    Conv(3, stride 2, valid, no bias) 32 ch -> BN -> ReLU6
    4 depthwise-separable blocks, filters 32/64/128/128, strides 2/2/1/1:
        DepthwiseConv(3, stride; valid if strided else 'same', no bias) -> BN -> ReLU6
        -> Conv(1, no bias) -> BN -> ReLU6
    -> average over the whole clip -> Dropout -> Dense(12)
    time 49 -> 24 -> 11 -> 5 -> 5 -> 5

What kwsnb changed to stream it (one definition, all modes):

* **'same' -> 'valid' in the two stride-1 depthwise convolutions, strides end-anchored.**
  'same' pads both ends of the 5-step sequence: each output looks one step (80 ms) into the
  future and at zeros the stream never sees. With no padding: time 49 -> 24 -> 11 -> 5 -> 3 -> 1,
  so the average is over one step whose receptive field is 47 of the 49 frames (the seed's
  strided layers also leave frames out). Strided layers drop leading steps so their grid ends
  on the clip's last frame (the seed's ends on frame 47 of 49 after the second conv).
  Parameters unchanged; accuracy cost measured in the notebook.
* **Strides become dilations when streaming** (ring buffers read every 2nd/4th/8th entry), so
  the model emits every 20 ms; cost: every layer runs once per packet (see ``count_macs``).

Result: after every packet from the 50th on, the streaming output equals the non-stream output
on the last second of audio. (The seed's ``(2, 2)`` strides act on time and on a frequency axis
of size 1, where they change nothing; kwsnb uses the time stride.)
"""
from __future__ import annotations

import keras
from keras import layers

from kwsnb.layers import ModelBuilder
from kwsnb.layers.blocks import batch_norm_activation, classification_head
from kwsnb.models.flags import Flags

FLAGS = {
    # The seed command line's feature flags for this model.
    "window_size_ms": 40.0,
    "window_stride_ms": 20.0,
    "mel_num_bins": 80,
    "mel_upper_edge_hertz": 7600.0,
    "dct_num_features": 40,
    "fft_magnitude_squared": True,
    # Architecture flags (kernel sizes and strides as (time, frequency) pairs, as in the seed).
    "cnn1_filters": 32,
    "cnn1_kernel_size": (3, 1),
    "cnn1_strides": (2, 2),
    "ds_kernel_size": [(3, 1), (3, 1), (3, 1), (3, 1)],
    "ds_strides": [(2, 2), (2, 2), (1, 1), (1, 1)],
    "cnn_filters": [32, 64, 128, 128],
    "dropout": 0.0,
    "bn_scale": True,
}

SEED_PARAMS = 35_084
CHANGES = ("stride-1 depthwise convs 'same' -> 'valid', strides end-anchored "
           "(49->24->11->5->3->1 steps, seed 49->24->11->5->5->5)")


def build_model(flags: dict, mode) -> keras.Model:
    f = Flags("mobilenet", flags)
    filters = f.ints("cnn_filters")
    kernel_sizes = f.time_sizes("ds_kernel_size", length=len(filters))
    strides = f.time_strides("ds_strides", length=len(filters))
    bn_scale = f.bool("bn_scale")

    b = ModelBuilder(mode, padding="valid", flags=flags)
    x, t = b.features()
    x, t = b.stream(layers.Conv1D(f.int("cnn1_filters"), f.time_size("cnn1_kernel_size"),
                                  strides=f.time_stride("cnn1_strides"), use_bias=False,
                                  name="conv_0"), x, t, flag="cnn1_kernel_size / cnn1_strides")
    x = batch_norm_activation(x, "conv_0", scale=bn_scale, activation="relu6")

    for i, (kernel_size, stride, width) in enumerate(zip(kernel_sizes, strides, filters), 1):
        x, t = b.stream(layers.DepthwiseConv1D(kernel_size, strides=stride, use_bias=False,
                                               name=f"block_{i}_depthwise"), x, t,
                        flag="ds_kernel_size / ds_strides")
        x = batch_norm_activation(x, f"block_{i}_depthwise", scale=bn_scale, activation="relu6")
        # The 1x1 convolution works on each step: a Dense layer, as in any streaming mode.
        x = layers.Dense(width, use_bias=False, name=f"block_{i}_pointwise")(x)
        x = batch_norm_activation(x, f"block_{i}_pointwise", scale=bn_scale, activation="relu6")

    x = b.global_average(x, t, name="average")
    logits = classification_head(x, flags["label_count"], f.rate("dropout"))
    return b.model(logits, name="mobilenet")
