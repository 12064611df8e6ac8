"""inception_resnet: a reduced Inception-ResNet over time (kws_streaming's
``models/inception_resnet.py``, "reduced version of keras/applications/inception_resnet_v2.py";
Inception-ResNet, arXiv:1602.07261).

Seed structure at its flags (``dct_num_features`` 30, MFCCs as channels of ``[49, 1, 30]``;
conv_bn is Conv(no bias) -> BatchNorm(with scale, ``bn_scale`` 1) -> ReLU)::

    conv_bn(5, valid) 32 ch                          (cnn1_strides 1: no pooling after it)
    3 Inception-ResNet blocks, per block (lists cnn2_*): k = 3/5/5, scale s = 0.2/0.5/1.0,
    branch widths b0 = 16/16/32, b1 = 16/16/32, output widths 32/32/64:
        branch 0: conv_bn(1) to b0
        branch 1: conv_bn(1) to b0 -> conv_bn(k, 'same') to b1 -> conv_bn(k, 'same') to b1
        Concatenate -> Conv(1, with bias) -> BatchNorm (no ReLU) back to the block input's
        width r; x + s * r -> ReLU
        -> conv_bn(1) to the output width
        -> MaxPool(3, stride 2, valid) after blocks 1 and 2 (cnn2_strides 2, 2, 1)
    -> average over the whole clip -> Dropout -> Dense(12)
    time 49 -> 45 -> 22 -> 10

What kwsnb changed to stream it (one definition, all modes):

* **'same' -> 'causal' padding everywhere, strides end-anchored.** 'same' pads both ends of the
  clip, so each output looks into the future and at zeros the stream never sees. Valid
  padding does not fit: one step of the last block sees 63 frames (1.3 s), more than the clip's
  49, so time runs out (49 -> 45 -> 41 -> 20 -> 12 -> 5 -> 1 -> none in block 3). Causal
  padding puts ``window - 1`` zeros before the clip at every time layer, the first conv and the
  max pools included (one padding per model): time 49 -> 49 -> 25 -> 13, versus the seed's
  49 -> 45 -> 22 -> 10. The pools follow a ReLU, so their zero padding never wins over a real
  step. Both branches and the residual keep the block input's length, so they join as in the
  seed. Parameters unchanged; the accuracy cost is measured in the notebook.
* **The scaled residual is Keras layers**: the seed's ``Lambda(x + scale * r)`` becomes
  ``Rescaling(scale)`` and ``Add`` (per-step layers; same computation, serializable).
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

import numbers

import keras
from keras import layers

from kwsnb.layers import ModelBuilder
from kwsnb.layers.blocks import classification_head
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
    "cnn1_strides": [1],  # max-pool (3) stride after each first layer; 1: no pooling
    "cnn1_kernel_sizes": [5],
    # Inception-ResNet blocks, one entry per block.
    "cnn2_scales": [0.2, 0.5, 1.0],  # residual scale: x + scale * r
    "cnn2_filters_branch0": [16, 16, 32],  # 1x1 branch, and the 1x1 opening branch 1
    "cnn2_filters_branch1": [16, 16, 32],  # branch 1's two k-wide convs
    "cnn2_filters_branch2": [32, 32, 64],  # 1x1 conv_bn after the block
    "cnn2_strides": [2, 2, 1],  # max-pool (3) stride after each block; 1: no pooling
    "cnn2_kernel_sizes": [3, 5, 5],
    "bn_scale": True,
    "dropout": 0.0,
}

SEED_PARAMS = 33_324
CHANGES = ("'same' -> 'causal' padding everywhere with end-anchored strides (49->49->25->13 "
           "steps, seed 49->45->22->10); final average streams")


def build_model(flags: dict, mode) -> keras.Model:
    f = Flags("inception_resnet", flags)
    cnn1_filters = f.ints("cnn1_filters")
    cnn1_kernel_sizes = f.time_sizes("cnn1_kernel_sizes", length=len(cnn1_filters))
    cnn1_strides = f.ints("cnn1_strides", length=len(cnn1_filters))
    scales = f.list("cnn2_scales")
    blocks = len(scales)
    for scale in scales:
        if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
            raise f.error("cnn2_scales", f"{scale!r} is not a number (one scale per block)")
    filters_branch0 = f.ints("cnn2_filters_branch0", length=blocks)
    filters_branch1 = f.ints("cnn2_filters_branch1", length=blocks)
    filters_out = f.ints("cnn2_filters_branch2", length=blocks)
    strides = f.ints("cnn2_strides", length=blocks)
    kernel_sizes = f.time_sizes("cnn2_kernel_sizes", length=blocks)
    bn_scale = f.bool("bn_scale")
    dropout = f.rate("dropout")

    b = ModelBuilder(mode, padding="causal", flags=flags)

    def conv_bn(x, t, filters, kernel_size, name, flag=None, activation="relu", use_bias=False):
        """The seed's conv_bn: Conv -> BatchNorm -> activation; a 1x1 conv is a Dense."""
        if kernel_size == 1:
            x = layers.Dense(filters, use_bias=use_bias, name=name)(x)
        else:
            x, t = b.stream(layers.Conv1D(filters, kernel_size, use_bias=use_bias, name=name),
                            x, t, flag=flag)
        x = layers.BatchNormalization(scale=bn_scale, name=f"{name}_bn")(x)
        if activation is not None:
            x = layers.Activation(activation, name=f"{name}_{activation}")(x)
        return x, t

    def max_pool(x, t, stride, name, flag):
        if stride == 1:
            return x, t
        return b.stream(layers.MaxPooling1D(3, strides=stride, name=name), x, t, flag=flag)

    x, t = b.features()
    for i, (filters, kernel_size, stride) in enumerate(
            zip(cnn1_filters, cnn1_kernel_sizes, cnn1_strides), 1):
        x, t = conv_bn(x, t, filters, kernel_size, f"conv_{i}", "cnn1_kernel_sizes")
        x, t = max_pool(x, t, stride, f"conv_{i}_pool", "cnn1_strides")

    for i, (scale, width0, width1, width_out, stride, kernel_size) in enumerate(
            zip(scales, filters_branch0, filters_branch1, filters_out, strides, kernel_sizes), 1):
        block = f"block_{i}"
        branch_0, _ = conv_bn(x, t, width0, 1, f"{block}_branch_0")
        branch_1, t_1 = conv_bn(x, t, width0, 1, f"{block}_branch_1_in")
        for j in (1, 2):
            branch_1, t_1 = conv_bn(branch_1, t_1, width1, kernel_size,
                                    f"{block}_branch_1_conv_{j}", "cnn2_kernel_sizes")
        # Causal padding keeps both branches on the block input's timeline: no cropping needed.
        mixed = layers.Concatenate(axis=-1, name=f"{block}_concat")([branch_0, branch_1])
        residual, _ = conv_bn(mixed, t, x.shape[-1], 1, f"{block}_up", activation=None,
                              use_bias=True)
        residual = layers.Rescaling(float(scale), name=f"{block}_scale")(residual)
        x = layers.Add(name=f"{block}_add")([x, residual])
        x = layers.Activation("relu", name=f"{block}_relu")(x)
        x, t = conv_bn(x, t, width_out, 1, f"{block}_out")
        x, t = max_pool(x, t, stride, f"{block}_pool", "cnn2_strides")

    x = b.global_average(x, t, name="average")
    logits = classification_head(x, flags["label_count"], dropout)
    return b.model(logits, name="inception_resnet")
