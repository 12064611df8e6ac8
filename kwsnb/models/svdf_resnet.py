"""svdf_resnet: three residual blocks of SVDF layers (kws_streaming's ``models/svdf_resnet.py``).

Seed structure at its flags (``dct_num_features`` 40; causal SVDFs, ``svdf_pad`` 1)::

    block b = 1, 2, 3:  SVDF(units1, memory, no depthwise bias, BatchNorm, ReLU) per entry of
                        block<b>_units1, the block's last SVDF linear
                        + shortcut Dense(units1[-1], no bias) -> BatchNorm
                        -> Add -> ReLU -> MaxPool(blocks_pool[b])
        units/memory: [32/7], [50/7], [50/11, 128/11]; pools 2, 2, 1
    -> average over the whole clip -> Dropout(dropout1) -> Dense(64, ReLU) -> Dense(12)

What kwsnb changed to stream it (one definition, all modes):

* **Max pooling is causal.** The seed's ``MaxPool1D(2, padding="valid")`` takes steps (0, 1),
  (2, 3), ... and drops the clip's last frame (49 -> 24 -> 12). kwsnb pools (t-1, t) on a grid
  ending at the last frame and pads one zero step before the clip (49 -> 25 -> 13), as causal
  padding does for the SVDFs. Parameter count unchanged. Stream cost: after each pool the
  following SVDFs and the average read every 2nd/4th step of their ring buffers (stride turned
  into dilation), so the model emits every 20 ms.
* **The final average streams** as a ring buffer of the last 13 pooled steps (every 4th entry of
  a 49-entry buffer), as kws_streaming's Stream(AveragePooling2D) does.

Because the SVDFs pad causally, the receptive field (about 2 s at these flags) reaches before
the clip: the stream equals the non-stream model on a clip when it starts from a reset state
with its audio buffer primed by the clip's first packet (``StreamRunner.reset(prime=...)``).
On continuous audio it carries real history where training saw zero padding (as in the seed).
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
    # Architecture flags: per block, one entry per SVDF layer.
    "block1_memory_size": [7],
    "block2_memory_size": [7],
    "block3_memory_size": [11, 11],
    "block1_units1": [32],
    "block2_units1": [50],
    "block3_units1": [50, 128],
    "blocks_pool": [2, 2, 1],  # max-pool size (= stride) after each block
    "use_batch_norm": True,
    "bn_scale": True,
    "activation": "relu",
    "svdf_dropout": 0.0,
    "svdf_pad": True,  # True: causal (the seed's choice); False: valid, which these memory
                       # sizes do not fit into one second
    "svdf_use_bias": False,
    "dropout1": 0.0,
    "units2": [64],  # hidden Dense layers before the logits
    "flatten": False,  # True: flatten the last block's steps instead of averaging them
}

SEED_PARAMS = 33_568
CHANGES = ("max pooling causal on an end-anchored grid (49->25->13 steps, seed 49->24->12); "
           "final average streams as a ring buffer")


def build_model(flags: dict, mode) -> keras.Model:
    f = Flags("svdf_resnet", flags)
    pools = f.ints("blocks_pool", length=3)
    activation = f.activation("activation")
    blocks = []
    for block in (1, 2, 3):
        units = f.ints(f"block{block}_units1")
        memory = f.ints(f"block{block}_memory_size", length=len(units))
        blocks.append((block, units, memory))

    b = ModelBuilder(mode, padding="causal" if f.bool("svdf_pad") else "valid", flags=flags)
    x, t = b.features()
    for (block, units, memory), pool in zip(blocks, pools):
        shortcut, shortcut_t = x, t
        for i, (units1, memory_size) in enumerate(zip(units, memory)):
            last = i == len(units) - 1
            x, t = b.stream(SVDF(units1=units1, memory_size=memory_size,
                                 activation="linear" if last else activation,
                                 use_bias=f.bool("svdf_use_bias"),
                                 use_batch_norm=f.bool("use_batch_norm"),
                                 bn_scale=f.bool("bn_scale"),
                                 dropout=f.rate("svdf_dropout"),
                                 name=f"svdf_{block}_{i}"),
                            x, t, flag=f"block{block}_memory_size")
        # 1x1 convolution on the shortcut, as in the seed.
        shortcut = layers.Dense(units[-1], use_bias=False, name=f"shortcut_{block}")(shortcut)
        shortcut = layers.BatchNormalization(scale=f.bool("bn_scale"),
                                             name=f"shortcut_{block}_bn")(shortcut)
        shortcut = b.crop_to(shortcut, shortcut_t, t, name=f"shortcut_{block}_crop")
        x = layers.Add(name=f"add_{block}")([x, shortcut])
        x = layers.Activation(activation, name=f"activation_{block}")(x)
        x, t = b.stream(layers.MaxPooling1D(pool, name=f"max_pool_{block}"), x, t,
                        flag="blocks_pool")

    if f.bool("flatten"):
        x = b.flatten(x, t, name="flatten")
    else:
        x = b.global_average(x, t, name="average")
    x = layers.Dropout(f.rate("dropout1"), name="dropout1")(x)
    for i, units in enumerate(f.ints("units2")):
        x = layers.Dense(units, activation=activation, name=f"dense_{i}")(x)
    logits = layers.Dense(flags["label_count"], name="logits")(x)
    return b.model(logits, name="svdf_resnet")
