"""kwsnb.models: the registry, the seed's flags and parameter counts, training, flag errors.

Parametrized over ``kwsnb.models.MODELS``, so every architecture module added later is tested
here without editing this file.
"""
from __future__ import annotations

import ast
import shlex

import keras
import numpy as np
import pytest

from kwsnb import models, streaming
from kwsnb.models import seed
from kwsnb.data import load_clip
from kwsnb.layers import Mode

TRAIN_WORDS = ("yes", "no", "up", "down")


@pytest.fixture(scope="module")
def word_batch(real_train_dir):
    """Four real clips (../shared/data) of each of four words: audio [16, 16000] and labels [16].
    Without the folder the tests skip, and fail in CI (KWSNB_REQUIRE_SHARED=1): never another
    data set in its place."""
    folder = real_train_dir
    audio, labels = [], []
    for label, word in enumerate(TRAIN_WORDS):
        for path in sorted((folder / word).iterdir())[:4]:
            audio.append(load_clip(path))
            labels.append(label)
    return np.stack(audio), np.array(labels, dtype=np.int32)


# -- registry and flags ---------------------------------------------------------------------------

def test_registry_lists_implemented_seed_architectures_in_seed_order():
    assert set(models.MODELS) <= set(models.ARCHITECTURES)
    assert list(models.MODELS) == [n for n in models.ARCHITECTURES if n in models.MODELS]
    assert {"svdf", "svdf_resnet", "tc_resnet", "mobilenet"} <= set(models.MODELS)


def _seed_value(text: str):
    """A seed command-line value as Python: "(3,1),(3,1)" -> ((3, 1), (3, 1)), "" -> []."""
    if text == "":
        return []
    for candidate in (text, f"[{text}]"):
        try:
            return ast.literal_eval(candidate)
        except (ValueError, SyntaxError):
            pass
    return text


def _canonical(value, like=None):
    """Lists and tuples alike, bools as ints, a scalar as a one-entry list where a list is due."""
    if isinstance(value, str):
        value = _seed_value(value) if like is not None and not isinstance(like, str) else value
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(like, list) and not isinstance(value, (list, tuple)):
        return [_canonical(value)]
    return int(value) if isinstance(value, bool) else value


@pytest.mark.parametrize("name", models.MODELS)
def test_default_flags_are_the_seed_command_line(name):
    argv = shlex.split(seed.SEED_COMMANDS[name])
    split = argv.index(name)

    def pairs(part):
        return {flag[2:]: value for flag, value in zip(part[::2], part[1::2])}

    model_flags = pairs(argv[split + 1:])
    given = {**pairs(argv[:split]), **model_flags}
    defaults = models.default_flags(name)

    assert set(model_flags) <= set(defaults), "every seed flag of the model exists in kwsnb"
    for key, text in given.items():
        if key in defaults:
            expected = _canonical(_seed_value(text), like=defaults[key])
            assert _canonical(defaults[key]) == expected, key
    # The feature flags the issue names, explicitly.
    assert defaults["mel_upper_edge_hertz"] == 7600.0
    assert defaults["mel_num_bins"] == 80
    assert defaults["fft_magnitude_squared"] is True


@pytest.mark.parametrize("name", models.MODELS)
def test_parameter_count_matches_the_seed(name):
    model = models.build(name)
    params = models.count_params(model)
    published = seed.PUBLISHED[name]["params"]
    # Within 5% of the published (rounded) count, and equal to a recount of the seed's code.
    assert abs(params - published) <= 0.05 * published, (params, published)
    assert params == models.architecture(name).SEED_PARAMS


def test_count_macs_by_hand_for_mobilenet():
    # Valid padding: time 49 -> 24 -> 11 -> 5 -> 3 -> 1 (see kwsnb/models/mobilenet.py).
    conv = 24 * 3 * 40 * 32
    blocks = [(11, 32, 32), (5, 32, 64), (3, 64, 128), (1, 128, 128)]  # (steps, in, out)
    depthwise = sum(steps * 3 * width for steps, width, _ in blocks)
    pointwise = sum(steps * width * out for steps, width, out in blocks)
    logits = 128 * 12
    macs = models.count_macs(models.build("mobilenet"))
    assert macs["body"] == conv + depthwise + pointwise + logits
    # Front end: window + mel (bins 2..486 x 80) + DCT (80 x 40) per frame, 49 frames.
    assert macs["front_end"] == 49 * (640 + 485 * 80 + 80 * 40)


# -- building and training --------------------------------------------------------------------

@pytest.mark.parametrize("name", models.MODELS)
def test_forward_pass_on_real_audio(name, word_batch):
    audio, _ = word_batch
    model = models.build(name, mode=Mode.NON_STREAM_INFERENCE)
    logits = np.asarray(model(audio[:2], training=False))
    assert logits.shape == (2, 12)
    assert np.all(np.isfinite(logits))
    assert model.inputs[0].shape == (None, 16000)


@pytest.mark.parametrize("name", models.MODELS)
def test_trains_on_real_audio_then_streams(name, word_batch):
    """A few full-batch steps lower the loss; the trained model converts to both streaming
    modes and, fed the first clip packet by packet, ends where the non-stream model is."""
    audio, labels = word_batch
    keras.utils.set_random_seed(0)
    model = models.build(name, label_count=len(TRAIN_WORDS))
    model.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=False,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    losses = [float(model.train_on_batch(audio, labels)) for _ in range(25)]
    assert np.mean(losses[-3:]) < 0.8 * losses[0], losses

    clip = audio[0]
    expected = np.asarray(streaming.to_non_stream(model)(clip[None], training=False))[0]
    sliding = streaming.exact_on_last_second(model)
    for stream_model in (streaming.to_stream_internal(model), streaming.to_stream_external(model)):
        runner = streaming.StreamRunner(stream_model)
        if sliding:
            outputs = runner.run(clip)
        else:
            runner.reset(prime=clip[:runner.packet_samples])
            outputs = runner.run(clip[runner.packet_samples:])
        scale = max(1.0, float(np.abs(expected).max()))
        np.testing.assert_allclose(outputs[-1], expected, rtol=0, atol=1e-5 * scale)


# -- bad input ------------------------------------------------------------------------------------

def test_unknown_model_name_lists_the_models():
    with pytest.raises(ValueError) as error:
        models.build("resnet50")
    for name in models.MODELS:
        assert name in str(error.value)


def test_unknown_flag_lists_the_valid_flags():
    with pytest.raises(ValueError) as error:
        models.build("mobilenet", cnn_filterz=[32, 64, 128, 128])
    message = str(error.value)
    assert "cnn_filterz" in message and "cnn_filters" in message and "ds_strides" in message


@pytest.mark.parametrize("name, overrides, flag", [
    # Strides that shrink time below one step.
    ("mobilenet", dict(ds_strides=[(2, 2)] * 4), "ds_strides"),
    ("mobilenet", dict(cnn1_strides=(8, 1)), "cnn1_strides"),
    ("svdf", dict(svdf_memory_size=[30, 30, 10, 10, 10, 10]), "svdf_memory_size"),
    ("svdf_resnet", dict(svdf_pad=False), "block3_memory_size"),
    ("tc_resnet", dict(kernel_size=(25, 1)), "kernel_size"),
    # Lists of the wrong length, malformed values.
    ("svdf", dict(svdf_units1=[16, 32, 32]), "svdf_units1"),
    ("mobilenet", dict(ds_kernel_size=[(3, 1)] * 3), "ds_kernel_size"),
    ("svdf_resnet", dict(blocks_pool=[2, 2]), "blocks_pool"),
    ("tc_resnet", dict(kernel_size=(3, 3)), "kernel_size"),
    ("tc_resnet", dict(bn_renorm=True), "bn_renorm"),
    ("mobilenet", dict(cnn1_filters=0), "cnn1_filters"),
    ("mobilenet", dict(dropout=1.5), "dropout"),
    ("svdf", dict(svdf_act=["relu"] * 5 + ["no_such_activation"]), "svdf_act"),
    ("svdf", dict(dct_num_features=100), "dct_num_features"),
    ("tc_resnet", dict(label_count=0), "label_count"),
    ("mobilenet_v2", dict(cnn_strides=[(2, 2)] * 4), "cnn_strides"),
    ("mobilenet_v2", dict(cnn_expansions=[1.5] * 3), "cnn_expansions"),
    ("mobilenet_v2", dict(cnn_expansions=[0.01] * 4), "cnn_expansions"),
    ("xception", dict(cnn2_kernel_sizes=[5]), "cnn2_kernel_sizes"),
    ("xception", dict(stride2=-1), "stride2"),
    ("xception", dict(units2=[0]), "units2"),
    ("inception", dict(cnn2_filters2=[32, 64]), "cnn2_filters2"),
    ("inception", dict(cnn_strides=[2, 0, 1]), "cnn_strides"),
    ("inception", dict(cnn1_kernel_sizes=(5, 3)), "cnn1_kernel_sizes"),
    ("inception_resnet", dict(cnn2_scales=[0.2, "half", 1.0]), "cnn2_scales"),
    ("inception_resnet", dict(cnn2_kernel_sizes=[3, 5]), "cnn2_kernel_sizes"),
])
def test_impossible_flag_values_name_the_flag(name, overrides, flag):
    with pytest.raises(ValueError, match=flag):
        models.build(name, **overrides)


def test_seed_command_line_forms_are_accepted():
    # What kwsnb.train's parser makes of "--ds_kernel_size '(3,1),(3,1),(3,1),(3,1)'" etc.
    model = models.build("mobilenet", ds_kernel_size=[[3, 1]] * 4, cnn1_strides=[2, 2],
                         cnn_filters=[32, 64, 128, 128])
    assert models.count_params(model) == models.architecture("mobilenet").SEED_PARAMS
    model = models.build("svdf_resnet", block1_memory_size=7, blocks_pool=[2, 2, 1])
    assert models.count_params(model) == models.architecture("svdf_resnet").SEED_PARAMS
