"""Streaming equals non-stream, for every architecture, in both state modes (Keras and TFLite).

What is compared (float32 logits, tolerance ``TOLERANCE * max(1, max |non-stream logits|)``):

* Models without padding (``streaming.exact_on_last_second``: svdf, tc_resnet, mobilenet, ...):
  two real 1 s clips back to back are fed as 100 packets of 320 samples from a reset state; the
  output after packet n (n = 50 ... 100) must equal the non-stream output on the second of audio
  ending there, ``audio[(n - 50) * 320 : n * 320]``. Packet 50 is the first clip exactly; the
  others are windows across the two clips (continuous audio, no reset).
* Causal models (svdf_resnet): the non-stream model zero-pads every layer before the clip; the
  stream reproduces that from a reset state whose audio buffer is primed with the clip's first
  packet. After the clip's other 49 packets its output must equal the non-stream output on the
  clip.

Weights: BatchNorm statistics, scales, shifts and biases are randomized (seeded) so that no
layer is an identity; tests/test_models.py repeats the check with trained weights.
"""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from kwsnb import models, streaming
from kwsnb.tflite.runtime import TFLiteModel
from kwsnb.data import load_clip
from kwsnb.features import MFCC
from kwsnb.layers import (FRONT_END, ClipGeometry, Mode, Stream, Timeline, clip_geometry,
                          reset_states)

TOLERANCE = 1e-5
PACKET = 320
CLIP = 16000
MODES = (Mode.STREAM_INTERNAL_STATE_INFERENCE, Mode.STREAM_EXTERNAL_STATE_INFERENCE)


def _clips_dir(request):
    """Real Speech Commands clips when ../shared/data is there, else the offline TTS set."""
    try:
        return request.getfixturevalue("real_train_dir")
    except pytest.skip.Exception:
        return request.getfixturevalue("synthetic_dir")


@pytest.fixture(scope="module")
def two_clips(request):
    """A "yes" and a "no" clip, back to back: 2 s of real speech."""
    folder = _clips_dir(request)
    clips = [load_clip(sorted((folder / word).iterdir())[0]) for word in ("yes", "no")]
    return np.concatenate(clips)


def with_nontrivial_weights(model: keras.Model, seed: int = 0) -> keras.Model:
    """Randomizes BatchNorm statistics/scales/shifts and biases so no layer is an identity."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        kind = variable.path.rsplit("/", 1)[-1]
        if kind == "moving_variance":
            variable.assign(rng.uniform(0.5, 2.0, variable.shape))
        elif kind == "gamma":
            variable.assign(rng.uniform(0.5, 1.5, variable.shape))
        elif kind in ("moving_mean", "beta", "bias"):
            variable.assign(rng.normal(0.0, 0.2, variable.shape))
    return model


class Streams:
    """One architecture with non-trivial weights, in non-stream and both streaming modes."""

    def __init__(self, name: str):
        keras.utils.set_random_seed(0)
        self.non_stream = with_nontrivial_weights(models.build(name, Mode.NON_STREAM_INFERENCE))
        self.models = {mode: streaming.convert(self.non_stream, mode) for mode in MODES}
        self.runners = {mode: streaming.StreamRunner(model) for mode, model in self.models.items()}


@pytest.fixture(scope="module", params=models.MODELS)
def streams(request) -> Streams:
    return Streams(request.param)


def assert_close(actual, expected):
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=TOLERANCE * scale)


def check_stream(runner: streaming.StreamRunner, non_stream: keras.Model, audio: np.ndarray):
    """The comparison described in the module docstring; returns the max abs difference."""
    if streaming.exact_on_last_second(non_stream):
        runner.reset()
        outputs = runner.run(audio)
        ends = range(CLIP // PACKET, len(audio) // PACKET + 1)
        windows = np.stack([audio[end * PACKET - CLIP:end * PACKET] for end in ends])
        expected = non_stream.predict(windows, verbose=0)
        actual = outputs[CLIP // PACKET - 1:]
    else:
        clip = audio[:CLIP]
        runner.reset(prime=clip[:PACKET])
        actual = runner.run(clip[PACKET:])[-1:]
        expected = non_stream.predict(clip[None], verbose=0)
    assert_close(actual, expected)
    return float(np.abs(actual - expected).max())


# -- Keras streaming models ---------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
def test_stream_equals_non_stream(streams, mode, two_clips):
    check_stream(streams.runners[mode], streams.non_stream, two_clips)


def test_internal_and_external_state_agree_at_every_packet(streams, two_clips):
    """Including the first second, where the stream still holds its initial zeros."""
    outputs = []
    for runner in streams.runners.values():
        runner.reset()
        outputs.append(runner.run(two_clips))
    internal, external = outputs
    assert internal.shape == (len(two_clips) // PACKET, 12)
    np.testing.assert_allclose(internal, external, rtol=0, atol=1e-6)


def test_conversion_round_trip_keeps_weights(streams, two_clips):
    external = streams.models[Mode.STREAM_EXTERNAL_STATE_INFERENCE]
    back = streaming.to_non_stream(external)
    for original, copied in zip(streams.non_stream.weights, back.weights):
        np.testing.assert_array_equal(np.asarray(original), np.asarray(copied))
    clip = two_clips[:CLIP][None]
    assert_close(back.predict(clip, verbose=0), streams.non_stream.predict(clip, verbose=0))
    assert models.spec(back).flags == models.spec(streams.non_stream).flags


def test_external_state_inputs_and_outputs_pair_up(streams):
    stream = streams.models[Mode.STREAM_EXTERNAL_STATE_INFERENCE]
    audio, *states = stream.inputs
    assert audio.name == "audio" and tuple(audio.shape) == (1, PACKET)
    assert states and all(state.name.endswith("_state") for state in states)
    outputs = stream([np.zeros(tensor.shape, np.float32) for tensor in stream.inputs])
    assert set(outputs) == {"logits"} | {state.name for state in states}
    for state in states:
        assert tuple(outputs[state.name].shape) == tuple(state.shape)


def test_reset_starts_a_fresh_stream(streams, two_clips):
    runner = streams.runners[Mode.STREAM_INTERNAL_STATE_INFERENCE]
    runner.reset()
    first = runner.run(two_clips[:CLIP])
    carried = runner.run(two_clips[:CLIP])  # continues the stream: the buffers hold audio
    runner.reset()
    again = runner.run(two_clips[:CLIP])
    np.testing.assert_array_equal(first, again)
    assert np.abs(carried[0] - first[0]).max() > 1e-3


# -- TFLite --------------------------------------------------------------------------------------

def to_tflite(model: keras.Model) -> bytes:
    # The converter takes the ring buffers' current values as their initial values.
    reset_states(model)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    # Internal state: the ring buffers stay variables (LiteRT resource variables).
    converter.experimental_enable_resource_variables = True
    return converter.convert()


def check_tflite(non_stream: keras.Model, audio: np.ndarray):
    external = streaming.StreamRunner(TFLiteModel(to_tflite(streaming.to_stream_external(non_stream))))
    assert external.external_state
    check_stream(external, non_stream, audio)

    internal = streaming.StreamRunner(TFLiteModel(to_tflite(streaming.to_stream_internal(non_stream))))
    assert not internal.external_state
    if streaming.exact_on_last_second(non_stream):
        check_stream(internal, non_stream, audio)
    else:  # its audio buffer cannot be primed from outside: compare with Keras, unprimed
        keras_stream = streaming.StreamRunner(streaming.to_stream_internal(non_stream))
        assert_close(internal.run(audio[:CLIP]), keras_stream.run(audio[:CLIP]))
    # reset() empties the ring buffers inside the TFLite model too.
    internal.reset()
    first = internal.run(audio[:CLIP])
    carried = internal.run(audio[:CLIP])
    internal.reset()
    np.testing.assert_array_equal(internal.run(audio[:CLIP]), first)
    assert np.abs(carried - first).max() > 0


def test_tflite_stream_equals_non_stream_mobilenet(two_clips):
    keras.utils.set_random_seed(0)
    check_tflite(with_nontrivial_weights(models.build("mobilenet", Mode.NON_STREAM_INFERENCE)),
                 two_clips)


@pytest.mark.slow
def test_tflite_stream_equals_non_stream(streams, two_clips):
    check_tflite(streams.non_stream, two_clips)


# -- the Stream wrapper on its own --------------------------------------------------------------

@pytest.mark.parametrize("kernel, strides, dilation, padding", [
    (3, 1, 1, "valid"), (3, 2, 1, "valid"), (5, 1, 2, "valid"), (3, 3, 1, "valid"),
    (3, 1, 1, "causal"), (4, 2, 1, "causal"), (3, 1, 3, "causal"),
])
def test_stream_wrapper_geometries(kernel, strides, dilation, padding, two_clips):
    """A strided, dilated conv after a strided pool, on real MFCC frames: the stream (one frame
    per call, strides turned into dilations) reproduces the non-stream output grid."""
    frames = np.asarray(MFCC(dct_num_features=8)(two_clips[None]))  # [1, 99, 8]
    keras.utils.set_random_seed(0)
    layers_by_mode = {}
    for mode in (Mode.NON_STREAM_INFERENCE, Mode.STREAM_INTERNAL_STATE_INFERENCE):
        pool = Stream(keras.layers.MaxPooling1D(2, name="pool"), mode=mode, step=1,
                      padding=padding)
        conv = Stream(keras.layers.Conv1D(4, kernel, strides=strides, dilation_rate=dilation,
                                          name="conv"), mode=mode, step=2, padding=padding)
        layers_by_mode[mode] = (pool, conv)
    pool, conv = layers_by_mode[Mode.NON_STREAM_INFERENCE]
    expected = np.asarray(conv(pool(frames)))[0]
    stream_pool, stream_conv = layers_by_mode[Mode.STREAM_INTERNAL_STATE_INFERENCE]
    stream_conv.build((1, 1, 8))
    stream_conv.cell.set_weights(conv.cell.get_weights())
    streamed = np.concatenate([np.asarray(stream_conv(stream_pool(frames[:, i:i + 1])))[0]
                               for i in range(frames.shape[1])])

    # Non-stream output j ends at frame last - (n - 1 - j) * 4 (2 from the pool, 2 from conv).
    total = Timeline(frames.shape[1]).after(2, 2, 1, padding).after(kernel, strides, dilation,
                                                                     padding)
    assert expected.shape[0] == total.frames and total.step == 2 * strides
    ends = frames.shape[1] - 1 - total.step * np.arange(total.frames)[::-1]
    # Valid outputs only exist for windows inside the audio, so every one is compared.
    np.testing.assert_allclose(streamed[ends], expected, rtol=0, atol=1e-4)


def test_clip_geometry_is_end_anchored():
    # 49 frames, kernel 3, stride 2: (49 - 3) is even, nothing dropped; last window 46..48.
    assert clip_geometry(49, 3, 2, 1, "valid") == ClipGeometry(pad=0, crop=0, output_frames=24)
    # 24 frames: (24 - 3) is odd, so frame 0 is dropped and the last window is 21..23.
    assert clip_geometry(24, 3, 2, 1, "valid") == ClipGeometry(pad=0, crop=1, output_frames=11)
    # Causal pool of 2: one zero before the clip, windows (-1, 0), (1, 2), ..., (47, 48).
    assert clip_geometry(49, 2, 2, 1, "causal") == ClipGeometry(pad=1, crop=0, output_frames=25)
    with pytest.raises(ValueError, match="does not fit"):
        clip_geometry(2, 3)


# -- bad input ------------------------------------------------------------------------------------

def test_stream_runner_refuses_a_non_stream_model():
    with pytest.raises(ValueError, match="to_stream_internal"):
        streaming.StreamRunner(models.build("svdf"))


def test_stream_runner_checks_packet_size():
    runner = streaming.StreamRunner(models.build("svdf", Mode.STREAM_INTERNAL_STATE_INFERENCE))
    with pytest.raises(ValueError, match="320"):
        runner.step(np.zeros(160, np.float32))
    with pytest.raises(ValueError, match="320"):
        runner.reset(prime=np.zeros(16000, np.float32))


def test_convert_refuses_a_foreign_model():
    foreign = keras.Sequential([keras.Input((16000,)), keras.layers.Dense(12)])
    with pytest.raises(ValueError, match="kwsnb.models.build"):
        streaming.to_stream_internal(foreign)


def test_front_end_buffer_is_named_for_priming():
    stream = models.build("svdf", Mode.STREAM_EXTERNAL_STATE_INFERENCE)
    assert FRONT_END + "_state" in [tensor.name for tensor in stream.inputs]


def test_one_state_rule_copies_equal_quantization_and_requantizes_otherwise():
    from kwsnb.streaming import dequantize, feed_back, quantization, quantize

    int8 = {"dtype": np.int8, "quantization": (0.5, -3), "shape": (1, 4)}
    same_tflm = {"dtype": np.int8, "shape": (1, 4),  # TFLite Micro's way of saying the same
                 "quantization_parameters": {"scales": np.array([0.5]), "zero_points": [-3]}}
    finer = {"dtype": np.int8, "scale": 0.25, "zero_point": 0, "shape": (1, 4)}
    values = np.array([[-128, -3, 5, 127]], np.int8)
    assert quantization(same_tflm) == quantization(int8) == (0.5, -3)
    assert feed_back(values, int8, same_tflm) is values  # as stored, bit for bit
    moved = feed_back(values, int8, finer)
    np.testing.assert_array_equal(moved, [[-128, 0, 16, 127]])  # clipped to int8 at the ends
    np.testing.assert_allclose(dequantize(moved[:, 1:3], finer), dequantize(values[:, 1:3], int8))
    floats = {"dtype": np.float32, "shape": (1, 4)}
    assert feed_back(values.astype(np.float32), floats, floats).dtype == np.float32
    np.testing.assert_array_equal(quantize(np.array([0.0]), int8), [-3])  # zero: the zero point
