"""mobilenet_v2: a reduced MobileNetV2 over time (kws_streaming's ``models/mobilenet_v2.py``;
MobileNetV2, arXiv:1801.04381).

Seed structure at its flags (``dct_num_features`` 30, MFCCs as channels of ``[49, 1, 30]``;
``bn_scale`` is not on the command line, so the seed's default 0 applies)::

    Conv(3, stride 2, valid, no bias) 32 ch -> BN -> ReLU6
    4 inverted residual blocks, filters 32/32/64/64, strides 1/2/1/1, expansion 1.5:
        1x1 Conv(int(1.5 * input width), no bias) -> BN -> ReLU6
        -> DepthwiseConv(3, stride, 'same', no bias) -> BN -> ReLU6
        -> 1x1 Conv(filters, no bias) -> BN (with scale: the seed leaves it at Keras' default)
        -> Add the block's input where width and stride are unchanged (blocks 1 and 4)
    -> average over the whole clip -> Dropout -> Dense(12)
    time 49 -> 24 -> 24 -> 12 -> 12 -> 12

What kwsnb changed to stream it (one definition, all modes):

* **'same' -> 'valid' in the four depthwise convolutions, strides end-anchored.** 'same' pads
  both ends: each output looks one step (40 or 80 ms) into the future and at zeros the stream
  never sees. With no padding: time 49 -> 24 -> 22 -> 10 -> 8 -> 6, the residual adds keep the
  last steps of the block's input (steps are end-aligned), and the average is over 6 steps
  whose receptive fields cover the clip's last 47 frames. The stem's grid already ends on the
  clip's last frame in the seed; the strided depthwise conv's grid is end-anchored too (the
  seed's 'same' grid starts at step 0). Parameters unchanged; accuracy cost measured in the
  notebook.
* **Strides become dilations when streaming** (ring buffers read every 2nd/4th entry), so the
  model emits every 20 ms; cost: every layer runs once per packet (see ``count_macs``).
* **The final average streams** as a ring buffer of the last 6 steps (every 4th entry).

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
    "dct_num_features": 30,
    "fft_magnitude_squared": True,
    # Architecture flags (kernel sizes and strides as (time, frequency) pairs, as in the seed).
    "cnn1_filters": 32,
    "cnn1_kernel_size": (3, 1),
    "cnn1_strides": (2, 2),
    "ds_kernel_size": [(3, 1), (3, 1), (3, 1), (3, 1)],  # depthwise conv of each block
    "cnn_strides": [(1, 1), (2, 2), (1, 1), (1, 1)],  # a strided block has no residual add
    "cnn_filters": [32, 32, 64, 64],  # a block that changes width has no residual add
    "cnn_expansions": [1.5, 1.5, 1.5, 1.5],  # expanded width = int(expansion * input width)
    "dropout": 0.0,
    "bn_scale": False,  # the seed's default (not on its command line); not the projections' BN
}

SEED_PARAMS = 28_316
CHANGES = ("depthwise convs 'same' -> 'valid', strides end-anchored, residuals cropped "
           "(49->24->22->10->8->6 steps, seed 49->24->24->12->12->12); final average streams")


def build_model(flags: dict, mode) -> keras.Model:
    f = Flags("mobilenet_v2", flags)
    filters = f.ints("cnn_filters")
    kernel_sizes = f.time_sizes("ds_kernel_size", length=len(filters))
    strides = f.time_strides("cnn_strides", length=len(filters))
    expansions = f.list("cnn_expansions", length=len(filters))
    for expansion in expansions:
        if isinstance(expansion, bool) or not isinstance(expansion, (int, float)) \
                or expansion <= 0:
            raise f.error("cnn_expansions", "each entry must be a number > 0")
    bn_scale = f.bool("bn_scale")

    b = ModelBuilder(mode, padding="valid", flags=flags)
    x, t = b.features()
    x, t = b.stream(layers.Conv1D(f.int("cnn1_filters"), f.time_size("cnn1_kernel_size"),
                                  strides=f.time_stride("cnn1_strides"), use_bias=False,
                                  name="conv_0"), x, t, flag="cnn1_kernel_size / cnn1_strides")
    x = batch_norm_activation(x, "conv_0", scale=bn_scale, activation="relu6")
    width = f.int("cnn1_filters")

    blocks = zip(kernel_sizes, strides, filters, expansions)
    for i, (kernel_size, stride, out_width, expansion) in enumerate(blocks, 1):
        block_input, block_t = x, t
        # The seed passes expansion * width (a float) to Conv2D, which truncates it to an int.
        expanded = int(expansion * width)
        if expanded < 1:
            raise f.error("cnn_expansions", f"block {i} would expand {width} channels to "
                                            f"{expanded}; use a larger expansion")
        # 1x1 convolutions work on each step: Dense layers, as in any streaming mode.
        x = layers.Dense(expanded, use_bias=False, name=f"block_{i}_expand")(x)
        x = batch_norm_activation(x, f"block_{i}_expand", scale=bn_scale, activation="relu6")
        x, t = b.stream(layers.DepthwiseConv1D(kernel_size, strides=stride, use_bias=False,
                                               name=f"block_{i}_depthwise"), x, t,
                        flag="ds_kernel_size / cnn_strides")
        x = batch_norm_activation(x, f"block_{i}_depthwise", scale=bn_scale, activation="relu6")
        x = layers.Dense(out_width, use_bias=False, name=f"block_{i}_project")(x)
        # Linear bottleneck; the seed builds this BatchNormalization with Keras' default scale.
        x = layers.BatchNormalization(name=f"block_{i}_project_bn")(x)
        if width == out_width and stride == 1:
            shortcut = b.crop_to(block_input, block_t, t, name=f"block_{i}_shortcut_crop")
            x = layers.Add(name=f"block_{i}_add")([shortcut, x])
        width = out_width

    x = b.global_average(x, t, name="average")
    logits = classification_head(x, flags["label_count"], f.rate("dropout"))
    return b.model(logits, name="mobilenet_v2")
