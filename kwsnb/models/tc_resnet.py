"""tc_resnet: temporal-convolution ResNet (kws_streaming's ``models/tc_resnet.py``; TC-ResNet,
arXiv:1904.03814).

Seed structure at its flags (``dct_num_features`` 30, MFCCs as channels of ``[49, 1, 30]``)::

    Conv(3) 32 ch -> BN -> ReLU
    per entry n of channels[1:] (36, 36, 40): if n differs from the input width, stride 2 and a
        shortcut Conv(1, stride 2) -> BN -> ReLU; else stride 1 and an identity shortcut
        Conv(kernel_size, stride) -> BN -> ReLU -> Conv(kernel_size) -> BN -> Add -> ReLU
    -> average over the whole clip -> Dropout -> 1x1 Conv to 12 (a Dense)
    all convolutions 'same' padded: time 49 -> 25 -> 13

What kwsnb changed to stream it (one definition, all modes):

* **'same' -> 'valid' padding, strides end-anchored.** 'same' pads both ends of the clip, so
  each output looks into the future and at zeros the stream never sees. With no padding every
  output depends on real audio only: time 49 -> 47 -> 23 -> 21 -> 19 -> 17 -> 8 -> 6 steps, and
  the shortcuts keep the last steps of their input to line up (steps are end-aligned; the
  strided layers' grids end on the clip's last frame, which the seed's 'same' grid also uses).
  Parameters unchanged. The model sees the same second of audio; its borders are no longer
  zero-padded, which may cost a little accuracy (measured in the notebook).
* **Strides become dilations when streaming** (ring buffers read every 2nd/4th entry), so the
  model emits every 20 ms; cost: the layers after a stride run on every packet.
* **The final average streams** as a ring buffer of the last 6 steps (every 4th entry).

Result: after every packet from the 50th on, the streaming output equals the non-stream output
on the last second of audio.
"""
from __future__ import annotations

import keras
from keras import layers

from kwsnb.layers import ModelBuilder
from kwsnb.models.flags import Flags

FLAGS = {
    # The seed command line's feature flags for this model.
    "window_size_ms": 40.0,
    "window_stride_ms": 20.0,
    "mel_num_bins": 80,
    "mel_upper_edge_hertz": 7600.0,
    "dct_num_features": 30,
    "fft_magnitude_squared": True,
    # Architecture flags.
    "kernel_size": (3, 1),  # residual blocks' convolutions (the first conv is always 3 wide)
    "channels": [32, 36, 36, 40],  # first conv, then one residual block per entry
    "debug_2d": False,  # the seed's 2-D (3, 3) kernels over the MFCC axis: not supported
    "pool_size": [],  # optional average pooling over time after the first conv
    "pool_stride": 0,
    "bn_momentum": 0.997,
    "bn_center": True,
    "bn_scale": True,
    "bn_renorm": False,  # Keras 3 has no batch renormalization: only False is accepted
    "dropout": 0.0,
}

SEED_PARAMS = 31_200
CHANGES = ("'same' -> 'valid' padding with end-anchored strides (49->47->23->21->19->17->8->6 "
           "steps, seed 49->25->13), shortcuts cropped; final average streams")


def build_model(flags: dict, mode) -> keras.Model:
    f = Flags("tc_resnet", flags)
    channels = f.ints("channels")
    if len(channels) < 1:
        raise f.error("channels", "needs at least the first convolution's width")
    kernel_size = f.time_size("kernel_size")
    if f.bool("debug_2d"):
        raise f.error("debug_2d", "2-D kernels over the MFCC axis are not supported; kwsnb "
                                  "convolves over time with the MFCCs as channels (debug_2d 0)")
    if f.bool("bn_renorm"):
        raise f.error("bn_renorm", "Keras 3 BatchNormalization has no renormalization; use 0")
    pool_size = f.list("pool_size")
    if len(pool_size) > 2:
        raise f.error("pool_size", "use '' (no pooling), p or (p, 1)")

    def batch_norm(name):
        return layers.BatchNormalization(momentum=f.number("bn_momentum"),
                                         center=f.bool("bn_center"), scale=f.bool("bn_scale"),
                                         name=name)

    b = ModelBuilder(mode, padding="valid", flags=flags)
    x, t = b.features()
    x, t = b.stream(layers.Conv1D(channels[0], 3, name="conv_0"), x, t)
    x = batch_norm("conv_0_bn")(x)
    x = layers.Activation("relu", name="conv_0_relu")(x)
    if pool_size:
        pool = f.time_size("pool_size", tuple(pool_size) if len(pool_size) == 2 else pool_size[0])
        stride = f.int("pool_stride", minimum=0) or pool
        x, t = b.stream(layers.AveragePooling1D(pool, strides=stride, name="pool_0"), x, t,
                        flag="pool_size")

    width = channels[0]
    for i, filters in enumerate(channels[1:], start=1):
        block_input, block_t = x, t
        stride = 2 if filters != width else 1
        if stride == 2:
            shortcut, shortcut_t = b.stream(
                layers.Conv1D(filters, 1, strides=2, name=f"block_{i}_shortcut"), x, t,
                flag="channels")
            shortcut = batch_norm(f"block_{i}_shortcut_bn")(shortcut)
            shortcut = layers.Activation("relu", name=f"block_{i}_shortcut_relu")(shortcut)
        else:
            shortcut, shortcut_t = block_input, block_t
        x, t = b.stream(layers.Conv1D(filters, kernel_size, strides=stride,
                                      name=f"block_{i}_conv_1"), x, t, flag="kernel_size")
        x = batch_norm(f"block_{i}_bn_1")(x)
        x = layers.Activation("relu", name=f"block_{i}_relu_1")(x)
        x, t = b.stream(layers.Conv1D(filters, kernel_size, name=f"block_{i}_conv_2"), x, t,
                        flag="kernel_size")
        x = batch_norm(f"block_{i}_bn_2")(x)
        shortcut = b.crop_to(shortcut, shortcut_t, t, name=f"block_{i}_shortcut_crop")
        x = layers.Add(name=f"block_{i}_add")([x, shortcut])
        x = layers.Activation("relu", name=f"block_{i}_relu_2")(x)
        width = filters

    x = b.global_average(x, t, name="average")
    x = layers.Dropout(f.rate("dropout"), name="dropout")(x)
    logits = layers.Dense(flags["label_count"], name="logits")(x)  # the seed's 1x1 conv
    return b.model(logits, name="tc_resnet")
