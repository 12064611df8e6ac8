"""SVDF: a dense layer factored into a projection over features and a filter over time.

kws_streaming's ``Svdf`` (END-TO-END STREAMING KEYWORD SPOTTING, arXiv:1812.02802), with its
options and defaults::

    input dropout (non-scaling) -> Dense(units1, use_bias=use_bias1)          per step
    -> depthwise 1-D conv over memory_size steps (+ bias if use_bias)         over time
    -> BatchNormalization(scale=bn_scale) if use_batch_norm -> activation
    -> Dense(units2) if units2 > 0                                            per step

The ring buffer holds ``memory_size - 1`` steps of the projection (``units1`` wide), which is
why the projection is applied before buffering.
"""
from __future__ import annotations

import keras

from kwsnb.layers.stream import StreamingLayer


@keras.saving.register_keras_serializable(package="kwsnb")
class SVDF(StreamingLayer):
    """One SVDF layer ``[batch, time, features] -> [batch, time', units2 or units1]``.

    ``padding`` "causal" is the seed's ``pad='causal'``, "valid" its ``pad='valid'`` (time
    shrinks by ``memory_size - 1``). ``dropout`` is the seed's non-scaling input dropout: kept
    values are not rescaled in training (so inference sees inputs ``1 / (1 - dropout)`` larger
    than training did; the seed's recipes use 0.0).
    """

    def __init__(self, units1: int, memory_size: int, units2: int = -1,
                 activation: str = "relu", use_bias1: bool = False, use_bias: bool = True,
                 use_batch_norm: bool = False, bn_scale: bool = False, dropout: float = 0.0,
                 **kwargs):
        super().__init__(kernel_size=memory_size, **kwargs)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{self.name}: dropout must be in [0, 1), got {dropout}")
        self.units1 = int(units1)
        self.memory_size = int(memory_size)
        self.units2 = int(units2)
        self.activation = keras.activations.get(activation)
        self.use_bias1 = bool(use_bias1)
        self.use_bias = bool(use_bias)
        self.use_batch_norm = bool(use_batch_norm)
        self.bn_scale = bool(bn_scale)
        self.dropout = float(dropout)

        self.dense1 = keras.layers.Dense(self.units1, use_bias=self.use_bias1, name="dense1")
        self.depthwise = keras.layers.DepthwiseConv1D(self.memory_size, use_bias=self.use_bias,
                                                      name="depthwise")
        self.batch_norm = (keras.layers.BatchNormalization(scale=self.bn_scale, name="batch_norm")
                           if self.use_batch_norm else None)
        self.dense2 = (keras.layers.Dense(self.units2, name="dense2")
                       if self.units2 > 0 else None)
        self.seed_generator = keras.random.SeedGenerator() if self.dropout else None

    def state_features(self, input_shape) -> tuple:
        return (self.units1,)

    def build(self, input_shape):
        time_shape = (input_shape[0], None)
        self.dense1.build(time_shape + (input_shape[-1],))
        self.depthwise.build(time_shape + (self.units1,))
        if self.batch_norm is not None:
            self.batch_norm.build(time_shape + (self.units1,))
        if self.dense2 is not None:
            self.dense2.build(time_shape + (self.units1,))
        super().build(input_shape)

    def project(self, inputs, training=None):
        if training and self.dropout:
            kept = keras.random.dropout(inputs, self.dropout, seed=self.seed_generator)
            inputs = kept * (1.0 - self.dropout)  # undo Keras's rescaling, as the seed does
        return self.dense1(inputs)

    def window_call(self, inputs, training=None):
        outputs = self.depthwise(inputs)
        if self.batch_norm is not None:
            outputs = self.batch_norm(outputs, training=training)
        outputs = self.activation(outputs)
        if self.dense2 is not None:
            outputs = self.dense2(outputs)
        return outputs

    def get_config(self):
        config = super().get_config()
        for key in ("kernel_size", "strides", "dilation_rate", "packet"):
            config.pop(key)
        return {**config, "units1": self.units1, "memory_size": self.memory_size,
                "units2": self.units2,
                "activation": keras.activations.serialize(self.activation),
                "use_bias1": self.use_bias1, "use_bias": self.use_bias,
                "use_batch_norm": self.use_batch_norm, "bn_scale": self.bn_scale,
                "dropout": self.dropout}
