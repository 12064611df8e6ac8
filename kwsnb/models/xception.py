"""xception: a reduced Xception over time (kws_streaming's ``models/xception.py``; Xception,
arXiv:1610.02357, and MatchboxNet, arXiv:2004.08531).

Seed structure at its flags (``dct_num_features`` 30, MFCCs as channels of ``[49, 1, 30]``,
``bn_scale`` 0, ``dropout`` 0)::

    Conv(5, valid, no bias) 16 ch -> BN -> ReLU -> MaxPool(3, stride 2, valid)
    blocks 2, 3, 4 (kernel sizes / filters 5,7 / 32,40; 7 / 64; 11 / 100):
        shortcut: 1x1 Conv(last filters, no bias) -> BN
        per (kernel, filters): DepthwiseConv(kernel, 'same', no bias) -> 1x1 Conv(filters,
            no bias) -> BN, then ReLU -> Dropout except after the last one
        -> Add the shortcut -> ReLU -> Dropout
        block 2 followed by MaxPool(3, stride 2, valid); strides 3 and 4 are 1: no pooling
    -> average over the whole clip -> Dropout -> Dense(64, no bias) -> BN -> ReLU -> Dense(12)
    time 49 -> 45 -> 22 -> 22 -> 10 -> 10 -> 10

The seed command line's ``--cnn1_kernel_size`` reaches the seed's ``cnn1_kernel_sizes`` through
argparse's prefix matching; kwsnb names the flag as the command line does.

What kwsnb changed to stream it (one definition, all modes):

* **Causal padding everywhere** ('same' depthwise convolutions; 'valid' stem convolution and
  max pools). 'same' pads both ends: each output looks up to 5 steps (up to 400 ms) into the
  future and at zeros the stream never sees. 'valid' does not fit: the receptive field is 95
  frames, and block 3's 7-tap convolution would find only 5 steps (49 -> 45 -> 22 -> 18 -> 12
  -> 5). Causal padding puts ``window - 1`` zeros before the clip, so time only shrinks by the
  pool strides: 49 -> 49 -> 25 -> 25 -> 13 -> 13 -> 13, with the pools' grids ending on the
  clip's last frame. Cost: the stem convolution now also sees 4 zero frames before the clip
  (its first 4 outputs are new); the pools are unaffected by their zeros, which never win a max
  over ReLU outputs. Parameters unchanged; accuracy cost measured in the notebook.
* **Strides become dilations when streaming** (ring buffers read every 2nd/4th entry), so the
  model emits every 20 ms; cost: the layers after a pool run on every packet.
* **The final average streams** as a ring buffer of the last 13 steps (every 4th entry).

Because of the causal padding the receptive field (95 frames, plus the average's 13 steps:
about 2.9 s) reaches before the clip: the stream equals the non-stream model on a clip when it
starts from a reset state with its audio buffer primed by the clip's first packet
(``StreamRunner.reset(prime=...)``). On continuous audio it carries real history where training
saw zero padding (as the seed's 'same' padding did).
"""
from __future__ import annotations

import keras
from keras import layers

from kwsnb.layers import ModelBuilder
from kwsnb.layers.blocks import batch_norm_activation
from kwsnb.models.flags import Flags

FLAGS = {
    # The seed command line's feature flags for this model.
    "window_size_ms": 40.0,
    "window_stride_ms": 20.0,
    "mel_num_bins": 80,
    "mel_upper_edge_hertz": 7600.0,
    "dct_num_features": 30,
    "fft_magnitude_squared": True,
    # Architecture flags. Stem: one convolution per entry; blocks 2-4: one depthwise-separable
    # convolution per entry (no filters: no block). stride<n> > 1 adds MaxPool(3, stride<n>).
    "cnn1_kernel_size": [5],
    "cnn1_filters": [16],
    "stride1": 2,
    "stride2": 2,
    "stride3": 1,
    "stride4": 1,
    "cnn2_kernel_sizes": [5, 7],
    "cnn2_filters": [32, 40],
    "cnn3_kernel_sizes": [7],
    "cnn3_filters": [64],
    "cnn4_kernel_sizes": [11],
    "cnn4_filters": [100],
    "units2": [64],  # hidden Dense layers (no bias, BN, ReLU) before the logits
    "bn_scale": False,
    "dropout": 0.0,
}

SEED_PARAMS = 31_740
CHANGES = ("'same' depthwise and 'valid' stem conv / max pools -> causal (49->49->25->25->13 "
           "steps, seed 49->45->22->22->10); final average streams")

POOL_SIZE = 3  # the seed's MaxPooling2D((3, 1), strides=(stride<n>, 1))


def build_model(flags: dict, mode) -> keras.Model:
    f = Flags("xception", flags)
    stem_filters = f.ints("cnn1_filters")
    stem_kernels = f.ints("cnn1_kernel_size", length=len(stem_filters))
    blocks = []
    for n in (2, 3, 4):
        filters = f.ints(f"cnn{n}_filters")
        # The seed skips a block without filters, whatever its kernel sizes.
        kernels = f.ints(f"cnn{n}_kernel_sizes", length=len(filters)) if filters else []
        blocks.append((n, kernels, filters))
    pool_strides = {n: f.int(f"stride{n}", minimum=0) for n in (1, 2, 3, 4)}
    units2 = f.ints("units2")
    dropout = f.rate("dropout")
    bn_scale = f.bool("bn_scale")

    b = ModelBuilder(mode, padding="causal", flags=flags)

    def max_pool(x, t, n):
        """The seed's optional MaxPool(3, stride<n>) after the stem (n=1) or block n."""
        if pool_strides[n] <= 1:
            return x, t
        return b.stream(layers.MaxPooling1D(POOL_SIZE, strides=pool_strides[n],
                                            name=f"max_pool_{n}"), x, t, flag=f"stride{n}")

    x, t = b.features()
    for j, (kernel_size, filters) in enumerate(zip(stem_kernels, stem_filters)):
        x, t = b.stream(layers.Conv1D(filters, kernel_size, use_bias=False, name=f"conv_{j}"),
                        x, t, flag="cnn1_kernel_size")
        x = batch_norm_activation(x, f"conv_{j}", scale=bn_scale)
    x, t = max_pool(x, t, 1)

    for n, kernels, filters in blocks:
        if filters:
            # 1x1 convolutions work on each step: Dense layers, as in any streaming mode.
            shortcut = layers.Dense(filters[-1], use_bias=False, name=f"block_{n}_shortcut")(x)
            shortcut = layers.BatchNormalization(scale=bn_scale,
                                                 name=f"block_{n}_shortcut_bn")(shortcut)
            shortcut_t = t
            for i, (kernel_size, width) in enumerate(zip(kernels, filters)):
                x, t = b.stream(layers.DepthwiseConv1D(kernel_size, use_bias=False,
                                                       name=f"block_{n}_depthwise_{i}"), x, t,
                                flag=f"cnn{n}_kernel_sizes")
                x = layers.Dense(width, use_bias=False, name=f"block_{n}_pointwise_{i}")(x)
                x = layers.BatchNormalization(scale=bn_scale, name=f"block_{n}_bn_{i}")(x)
                # The last convolution's activation comes after the residual add.
                if i < len(filters) - 1:
                    x = layers.Activation("relu", name=f"block_{n}_relu_{i}")(x)
                    x = layers.Dropout(dropout, name=f"block_{n}_dropout_{i}")(x)
            # Causal padding keeps the length, so the crop only checks that the steps line up.
            shortcut = b.crop_to(shortcut, shortcut_t, t, name=f"block_{n}_shortcut_crop")
            x = layers.Add(name=f"block_{n}_add")([shortcut, x])
            x = layers.Activation("relu", name=f"block_{n}_relu")(x)
            x = layers.Dropout(dropout, name=f"block_{n}_dropout")(x)
        x, t = max_pool(x, t, n)

    x = b.global_average(x, t, name="average")
    x = layers.Dropout(dropout, name="dropout")(x)
    for i, units in enumerate(units2):
        x = layers.Dense(units, use_bias=False, name=f"dense_{i}")(x)
        x = batch_norm_activation(x, f"dense_{i}", scale=bn_scale)
    logits = layers.Dense(flags["label_count"], name="logits")(x)
    return b.model(logits, name="xception")
