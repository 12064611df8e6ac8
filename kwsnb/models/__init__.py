"""The seed's ~30k-parameter architectures, one module each, and ``build(name, **flags)``.

``MODELS`` lists the architectures that have a module here, in the seed's table order.
``build(name, mode=..., **overrides)`` returns a Keras model that takes raw audio
``[batch, samples]`` (or one 320-sample packet when streaming) and returns logits, with the MFCC
front end inside. Flags have the seed's names and, by default, the values of the seed's command
line for that model (feature flags too); ``default_flags(name)`` lists them.

An architecture module ``kwsnb/models/<name>.py`` defines (docs/streaming.md walks through one):

``FLAGS``        its flags with the seed command line's values (feature flags included)
``SEED_PARAMS``  trainable parameters of the seed's model at those flags (counted from its code)
``CHANGES``      one line: what kwsnb changed to make it stream ("none" if streamable as-is)
``build_model(flags, mode)``  the model in any ``Mode``, written with ``kwsnb.layers.ModelBuilder``
                 and reading its flags through ``kwsnb.models.flags.Flags`` (errors name the flag)
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import keras
import numpy as np

from kwsnb.features import MFCC, FEATURE_DEFAULTS, spectrogram_bin_range, validate_feature_flags
from kwsnb.layers import SVDF, Mode, Stream, StreamingLayer
from kwsnb.models.flags import Flags

# The seed's eight architectures, in the order of its results table.
ARCHITECTURES = ("svdf_resnet", "mobilenet", "mobilenet_v2", "inception", "inception_resnet",
                 "svdf", "tc_resnet", "xception")

# Those implemented here (a module kwsnb/models/<name>.py exists).
MODELS = tuple(name for name in ARCHITECTURES
               if importlib.util.find_spec(f"{__name__}.{name}") is not None)

# Flags every architecture has: the front end's (seed names and defaults), the clip length and
# the number of output labels (the seed's 12: silence, unknown and ten words).
COMMON_FLAGS: dict[str, Any] = {**FEATURE_DEFAULTS, "clip_duration_ms": 1000, "label_count": 12}


@dataclass(frozen=True)
class ModelSpec:
    """How a model was built; ``kwsnb.streaming`` rebuilds it in another mode from this."""

    name: str
    mode: Mode
    flags: dict = field(hash=False)


def architecture(name: str) -> ModuleType:
    """The module of architecture ``name``; ValueError listing the valid names otherwise."""
    if name not in MODELS:
        missing = " (its module is not written yet)" if name in ARCHITECTURES else ""
        raise ValueError(f"unknown model {name!r}{missing}; valid models: {', '.join(MODELS)}")
    return importlib.import_module(f"{__name__}.{name}")


def default_flags(name: str) -> dict[str, Any]:
    """All flags of ``name`` with their defaults (the seed command line's values)."""
    return {**COMMON_FLAGS, **architecture(name).FLAGS}


def resolve_flags(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults updated with ``overrides``; unknown or malformed common flags raise ValueError."""
    defaults = default_flags(name)
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(f"{name} has no flag(s) {', '.join(unknown)}; valid flags: "
                         + ", ".join(defaults))
    flags = {**defaults, **overrides}
    features = validate_feature_flags(**{key: flags[key] for key in FEATURE_DEFAULTS})
    flags.update(features)
    reader = Flags(name, flags)
    flags["label_count"] = reader.int("label_count")
    flags["clip_duration_ms"] = reader.number("clip_duration_ms")
    return flags


def build(name: str, mode: Mode | str = Mode.TRAINING, **overrides) -> keras.Model:
    """Builds architecture ``name`` in ``mode`` with the seed's flags updated by ``overrides``.

    Raises ValueError naming the model, flag or value at fault: an unknown name (listing
    ``MODELS``), an unknown flag (listing the valid ones), or a value that cannot make a model
    (e.g. strides that leave no time step), before Keras builds anything.
    """
    module = architecture(name)
    mode = Mode.parse(mode)
    flags = resolve_flags(name, overrides)
    model = module.build_model(flags, mode)
    model.kwsnb_spec = ModelSpec(name=name, mode=mode, flags=dict(flags))
    return model


def spec(model: keras.Model) -> ModelSpec:
    """The ``ModelSpec`` of a model made by ``build``."""
    found = getattr(model, "kwsnb_spec", None)
    if found is None:
        raise ValueError(f"model {model.name!r} was not made by kwsnb.models.build; build it "
                         "with kwsnb.models.build(name, **flags) and load its weights into it")
    return found


# ---------------------------------------------------------------------------------------------
# Counting
# ---------------------------------------------------------------------------------------------

def count_params(model: keras.Model) -> int:
    """Trainable parameters: how the seed's published counts are made (BatchNorm moving
    statistics are not counted; ``model.count_params()`` counts them too)."""
    return int(sum(np.prod(v.shape) for v in model.trainable_weights))


def count_macs(model: keras.Model) -> dict[str, int]:
    """Multiply-accumulates of one call of ``model``: ``{"front_end": ..., "body": ...}``.

    One call is one clip in non-stream mode and one 20 ms packet in streaming modes (times 50
    for a second). Counted: dense, convolution and SVDF products, and the front end's window,
    mel and DCT products; not counted: the FFT, BatchNormalization (folded into the weights at
    export), activations, pooling and additions.
    """
    totals = {"front_end": 0, "body": 0}
    for layer in model.layers:
        inputs = keras.tree.flatten(layer.input) if layer.weights or isinstance(
            layer, StreamingLayer) else []
        if not inputs:
            continue
        outputs = keras.tree.flatten(layer.output)
        in_shape, out_shape = tuple(inputs[0].shape), tuple(outputs[0].shape)
        cell = layer.cell if isinstance(layer, Stream) else layer
        part = "front_end" if isinstance(cell, MFCC) else "body"
        totals[part] += _layer_macs(layer, cell, in_shape, out_shape)
    return totals


def _steps(shape: tuple) -> int:
    """Time steps (and any other non-channel axes) of one example."""
    return int(np.prod(shape[1:-1])) if len(shape) > 2 else 1


def _layer_macs(layer, cell, in_shape: tuple, out_shape: tuple) -> int:
    if isinstance(cell, MFCC):
        flags = cell.flags
        first, last = spectrogram_bin_range(cell.fft_length // 2 + 1, flags["sample_rate"],
                                            flags["mel_lower_edge_hertz"],
                                            flags["mel_upper_edge_hertz"])
        per_frame = (cell.frame_samples + (last - first + 1) * flags["mel_num_bins"]
                     + flags["mel_num_bins"] * flags["dct_num_features"])
        return out_shape[1] * per_frame
    if isinstance(cell, SVDF):
        projected = in_shape[1] * in_shape[-1] * cell.units1
        units2 = cell.units2 if cell.units2 > 0 else 0
        return projected + _steps(out_shape) * cell.units1 * (cell.memory_size + units2)
    config = cell.get_config()
    if isinstance(cell, keras.layers.Dense):
        return _steps(out_shape) * in_shape[-1] * config["units"]
    if isinstance(cell, keras.layers.SeparableConv1D):
        kernel = config["kernel_size"][0]
        middle = in_shape[-1] * config["depth_multiplier"]
        return _steps(out_shape) * (kernel * middle + middle * config["filters"])
    if isinstance(cell, keras.layers.DepthwiseConv1D):
        return _steps(out_shape) * config["kernel_size"][0] * in_shape[-1] * \
            config["depth_multiplier"]
    if isinstance(cell, keras.layers.Conv1D):
        return _steps(out_shape) * config["kernel_size"][0] * in_shape[-1] // config["groups"] * \
            config["filters"]
    return 0
