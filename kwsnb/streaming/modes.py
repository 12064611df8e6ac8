"""Keras models between modes (training, non-stream, streaming with internal or external
state) and the front end split off.

Conversion rebuilds the model in the other mode from its ``ModelSpec`` (kept by
``kwsnb.models.build``) and copies the weights by layer name; no Keras internals.

What "equal" means (docs/streaming.md): for models with valid padding (svdf, tc_resnet,
mobilenet, ...) the output after packet ``n >= 50`` equals the non-stream output on the last
second, ``audio[(n - 50) * 320 : n * 320]``. For causal models (svdf_resnet) the output after the
clip's last packet equals the non-stream output on the clip when the stream starts from
``StreamRunner.reset(prime=clip[:320])``.

``split_front_end`` cuts a model at its MFCC layer into a front end (audio -> features) and a body
(features -> logits), the features-in format's graph.
"""
from __future__ import annotations

import keras

from kwsnb import models
from kwsnb.layers import STATE_NAME, Mode, StreamingLayer


# ---------------------------------------------------------------------------------------------
# Conversion between modes
# ---------------------------------------------------------------------------------------------

def convert(model: keras.Model, mode: Mode | str) -> keras.Model:
    """``model`` rebuilt in ``mode`` (same architecture and flags) with its weights.

    Works between any two modes; streaming modes take one packet per call at batch size 1.
    """
    found = models.spec(model)
    converted = models.build(found.name, mode=mode, **found.flags)
    copy_weights(model, converted)
    return converted


def to_non_stream(model: keras.Model) -> keras.Model:
    """Non-stream inference: raw audio clips ``[batch, samples]`` -> logits."""
    return convert(model, Mode.NON_STREAM_INFERENCE)


def to_stream_internal(model: keras.Model) -> keras.Model:
    """Streaming with internal state: ``[1, 320]`` packet -> logits; ring buffers in variables
    (LiteRT: convert with ``experimental_enable_resource_variables = True``)."""
    return convert(model, Mode.STREAM_INTERNAL_STATE_INFERENCE)


def to_stream_external(model: keras.Model) -> keras.Model:
    """Streaming with external state: inputs ``[packet, *states]`` (``audio``, ``<layer>_state``),
    outputs a dict ``{"logits": ..., "<layer>_state": new state, ...}``."""
    return convert(model, Mode.STREAM_EXTERNAL_STATE_INFERENCE)


def exact_on_last_second(model: keras.Model) -> bool:
    """True when no time layer pads (valid padding throughout): then, from the 50th packet on,
    every stream output equals the non-stream output on the last second of audio. False for
    causal models, which match the non-stream model on a clip fed from a primed reset state."""
    return all(layer.padding != "causal" for layer in model.layers
               if isinstance(layer, StreamingLayer))


def _model_weights(layer: keras.layers.Layer) -> list:
    return [w for w in layer.weights if w.name != STATE_NAME]


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Copies every weight (ring buffers excepted) from ``source`` to ``target`` by layer name."""
    for layer in target.layers:
        wanted = _model_weights(layer)
        if not wanted:
            continue
        try:
            given = _model_weights(source.get_layer(layer.name))
        except ValueError:
            raise ValueError(f"{source.name} has no layer {layer.name!r} to copy weights from; "
                             "were both models built by kwsnb.models.build?") from None
        if [tuple(w.shape) for w in given] != [tuple(w.shape) for w in wanted]:
            raise ValueError(f"layer {layer.name!r}: weights {[tuple(w.shape) for w in given]} "
                             f"do not fit {[tuple(w.shape) for w in wanted]}; the two models "
                             "were built with different flags")
        for variable, value in zip(wanted, given):
            variable.assign(value)


# ---------------------------------------------------------------------------------------------
# Front end and body
# ---------------------------------------------------------------------------------------------

def front_end_layer(model):
    """The layer of ``model`` that computes the MFCCs: a kwsnb.features.MFCC, or the layer
    wrapping one (kwsnb.layers.Stream keeps it as ``cell``). Exactly one is expected."""
    from kwsnb.features import MFCC

    def holds_mfcc(layer, depth=0):
        cell = getattr(layer, "cell", None)
        return isinstance(layer, MFCC) or (cell is not None and depth < 4
                                           and holds_mfcc(cell, depth + 1))

    found = [layer for layer in model.layers if holds_mfcc(layer)]
    if len(found) != 1:
        raise ValueError(f"model {model.name!r} has {len(found)} MFCC front-end layers; export "
                          "needs exactly one (raw audio in, kwsnb.features.MFCC inside)")
    return found[0]


def mfcc_of(layer):
    """The kwsnb.features.MFCC inside a front-end layer (its flags, packet size, ...)."""
    while getattr(layer, "cell", None) is not None:
        layer = layer.cell
    return layer


def split_front_end(model):
    """(front_end, body): two Keras models sharing the model's layers; front_end maps raw audio
    to MFCC features, body maps features to the model's output."""
    import keras

    mfcc = front_end_layer(model)
    try:
        # One input as a tensor, not a one-element list: callers pass an array.
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
        front_end = keras.Model(inputs, mfcc.output, name=f"{model.name}_front_end")
        body = keras.Model(mfcc.output, model.outputs[0], name=f"{model.name}_body")
    except (AttributeError, ValueError) as error:
        raise ValueError(f"cannot split model {model.name!r} at its MFCC layer ({error}); the "
                          "features-in format needs a functional Keras model") from None
    return front_end, body
