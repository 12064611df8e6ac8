"""Blocks the architectures share: batch normalization followed by an activation, and the
classification head (dropout, then a Dense layer to the logits). Layer names are the ones the
models had before these blocks existed, so trained weights load unchanged."""
from __future__ import annotations

from keras import layers


def batch_norm_activation(x, name: str, *, scale: bool = True, activation: str | None = "relu"):
    """``{name}_bn`` then ``{name}_relu``: "relu" (Activation), "relu6" (ReLU(6)) or None."""
    x = layers.BatchNormalization(scale=scale, name=f"{name}_bn")(x)
    if activation == "relu6":
        return layers.ReLU(6.0, name=f"{name}_relu")(x)
    if activation == "relu":
        return layers.Activation("relu", name=f"{name}_relu")(x)
    if activation is not None:
        raise ValueError(f"activation must be 'relu', 'relu6' or None, got {activation!r}")
    return x


def classification_head(x, label_count: int, dropout: float, dropout_name: str = "dropout"):
    """Dropout, then ``logits``: a Dense layer to one logit per label."""
    x = layers.Dropout(dropout, name=dropout_name)(x)
    return layers.Dense(label_count, name="logits")(x)
