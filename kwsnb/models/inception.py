"""inception: a reduced Inception over time (kws_streaming's ``models/inception.py``, "reduced
version of keras/applications/inception_v3.py"; Inception-v3, arXiv:1512.00567).

Seed structure at its flags (``dct_num_features`` 30, MFCCs as channels of ``[49, 1, 30]``;
every conv is conv_bn: Conv(no bias) -> BatchNorm(no scale, ``bn_scale`` 0) -> ReLU)::

    conv_bn(5, valid) 32 ch                          (cnn1_strides 1: no pooling after it)
    3 inception blocks, k = 3/5/5 (cnn2_kernel_sizes), 16 ch per branch (cnn2_filters1):
        branch 1: conv_bn(1)
        branch 2: conv_bn(1) -> conv_bn(k, 'same')
        branch 3: conv_bn(1) -> conv_bn(k, 'same') -> conv_bn(k, 'same')
        Concatenate (48 ch) -> conv_bn(1) to 32/64/70 ch (cnn2_filters2)
        -> MaxPool(3, stride 2, valid) after blocks 1 and 2 (strides 2, 2, 1)
    -> average over the whole clip -> Dropout -> Dense(12)
    time 49 -> 45 -> 22 -> 10

The seed's command line lacks a ``\\`` after ``--cnn2_kernel_sizes '3,5,5'``, so its last three
flags (``--cnn_strides '2,2,1'``, ``--dropout 0.0``, ``--bn_scale 0``) never reached the
program. ``FLAGS`` holds what the command meant. What the seed trained with instead: the
pooling strides come from the code's ``--cnn2_strides`` (the version of ``inception.py`` with
these flag names has no ``--cnn_strides``), whose default ``'2,2,1'`` is the meant value;
``bn_scale`` defaulted to 0, the meant value; ``dropout`` defaulted to 0.2, not 0.0 (no effect
on the parameter count). kwsnb names the strides flag ``cnn_strides`` as the command does.

What kwsnb changed to stream it (one definition, all modes):

* **'same' -> 'causal' padding everywhere, strides end-anchored.** 'same' pads both ends of the
  clip, so each output looks into the future and at zeros the stream never sees. Valid
  padding does not fit: one step of the last block sees 63 frames (1.3 s), more than the clip's
  49, so time runs out (49 -> 45 -> 41 -> 20 -> 12 -> 5 -> 1 -> none in block 3).
  Causal padding puts ``window - 1`` zeros before the clip at every time layer, the first conv
  and the max pools included (one padding per model): time 49 -> 49 -> 25 -> 13, versus the
  seed's 49 -> 45 -> 22 -> 10. The pools follow a ReLU, so their zero padding never wins over a
  real step. The branches of a block all keep their input's length, so they concatenate as in
  the seed. Parameters unchanged; the accuracy cost is measured in the notebook.
* **Strides become dilations when streaming** (ring buffers read every 2nd/4th entry), so the
  model emits every 20 ms; cost: the layers after a pool run on every packet (see
  ``count_macs``).
* **The final average streams** as a ring buffer of the last 13 steps (every 4th entry).

Because the padding is causal, the stream equals the non-stream model on a clip when it starts
from a reset state with its audio buffer primed by the clip's first packet
(``StreamRunner.reset(prime=...)``). On continuous audio it carries real history where training
saw zero padding.
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
    # Architecture flags: the first conv_bn layers, one entry per layer.
    "cnn1_filters": [32],
    "cnn1_kernel_sizes": [5],
    "cnn1_strides": [1],  # max-pool (3) stride after each first layer; 1: no pooling
    # Inception blocks, one entry per block.
    "cnn2_filters1": [16, 16, 16],  # width of every branch conv
    "cnn2_filters2": [32, 64, 70],  # 1x1 conv after the concatenation
    "cnn2_kernel_sizes": [3, 5, 5],
    # The three flags the seed's command line lost (see the docstring): the values it meant.
    "cnn_strides": [2, 2, 1],  # max-pool (3) stride after each block; 1: no pooling
    "dropout": 0.0,
    "bn_scale": False,
}

SEED_PARAMS = 30_234
CHANGES = ("'same' -> 'causal' padding everywhere with end-anchored strides (49->49->25->13 "
           "steps, seed 49->45->22->10); final average streams")


def build_model(flags: dict, mode) -> keras.Model:
    f = Flags("inception", flags)
    cnn1_filters = f.ints("cnn1_filters")
    cnn1_kernel_sizes = f.time_sizes("cnn1_kernel_sizes", length=len(cnn1_filters))
    cnn1_strides = f.ints("cnn1_strides", length=len(cnn1_filters))
    filters1 = f.ints("cnn2_filters1")
    filters2 = f.ints("cnn2_filters2", length=len(filters1))
    kernel_sizes = f.time_sizes("cnn2_kernel_sizes", length=len(filters1))
    strides = f.ints("cnn_strides", length=len(filters1))
    bn_scale = f.bool("bn_scale")
    dropout = f.rate("dropout")

    b = ModelBuilder(mode, padding="causal", flags=flags)

    def conv_bn(x, t, filters, kernel_size, name, flag):
        """The seed's conv_bn: Conv(no bias) -> BatchNorm -> ReLU; a 1x1 conv is a Dense."""
        if kernel_size == 1:
            x = layers.Dense(filters, use_bias=False, name=name)(x)
        else:
            x, t = b.stream(layers.Conv1D(filters, kernel_size, use_bias=False, name=name),
                            x, t, flag=flag)
        return batch_norm_activation(x, name, scale=bn_scale), t

    def max_pool(x, t, stride, name, flag):
        if stride == 1:
            return x, t
        return b.stream(layers.MaxPooling1D(3, strides=stride, name=name), x, t, flag=flag)

    x, t = b.features()
    for i, (filters, kernel_size, stride) in enumerate(
            zip(cnn1_filters, cnn1_kernel_sizes, cnn1_strides), 1):
        x, t = conv_bn(x, t, filters, kernel_size, f"conv_{i}", "cnn1_kernel_sizes")
        x, t = max_pool(x, t, stride, f"conv_{i}_pool", "cnn1_strides")

    for i, (width, mixed_width, kernel_size, stride) in enumerate(
            zip(filters1, filters2, kernel_sizes, strides), 1):
        block = f"block_{i}"
        branch_1, _ = conv_bn(x, t, width, 1, f"{block}_branch_1", None)
        branch_2, t_2 = conv_bn(x, t, width, 1, f"{block}_branch_2_in", None)
        branch_2, t_2 = conv_bn(branch_2, t_2, width, kernel_size, f"{block}_branch_2_conv",
                                "cnn2_kernel_sizes")
        branch_3, t_3 = conv_bn(x, t, width, 1, f"{block}_branch_3_in", None)
        for j in (1, 2):
            branch_3, t_3 = conv_bn(branch_3, t_3, width, kernel_size,
                                    f"{block}_branch_3_conv_{j}", "cnn2_kernel_sizes")
        # Causal padding keeps every branch on the block input's timeline: no cropping needed.
        x = layers.Concatenate(axis=-1, name=f"{block}_concat")([branch_1, branch_2, branch_3])
        x, t = conv_bn(x, t, mixed_width, 1, f"{block}_mix", None)
        x, t = max_pool(x, t, stride, f"{block}_pool", "cnn_strides")

    x = b.global_average(x, t, name="average")
    logits = classification_head(x, flags["label_count"], dropout)
    return b.model(logits, name="inception")
