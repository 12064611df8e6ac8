"""kwsnb.features: the MFCC layer against the numpy reference, streaming, TFLite, flag checks.

Tolerances (absolute; benchmarks/features_error.py over 1000 real clips measured log-mel max
1.7e-3, MFCC max 5.2e-4). The layer runs in float32 (float32 FFT), the reference in float64:
  log-mel (natural log of the filterbank output, values about -28..+8):  5e-3
  MFCC (values about -350..+50; all-zero audio gives c0 = -349.5):       1e-3
Float32 FFT rounding sits about 140 dB below a frame's energy, so channels far below the frame's
loudest one (only seen here in saturated audio with a DC offset) are compared within 80 dB of it.
"""
from __future__ import annotations

import inspect
import math

import keras
import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from kwsnb.features import (FEATURE_DEFAULTS, FRAME_SAMPLES, LOG_FLOOR, MFCC, PACKET_SAMPLES,
                            compact_filterbank, dct_matrix, fft_length, mel_weight_matrix,
                            split_dct, num_frames, reference, spectrogram_bin_range)

LOG_MEL_TOLERANCE = 5e-3
MFCC_TOLERANCE = 1e-3
CLIP_SAMPLES = 16000
# What the front end may convert to; anything else (Flex*, custom) would need more than builtins.
EXPECTED_TFLITE_OPS = {"ADD", "COMPLEX_ABS", "CONCATENATION", "EXPAND_DIMS", "FULLY_CONNECTED",
                       "GATHER", "LOG", "MAXIMUM", "MUL", "PAD", "RESHAPE", "REVERSE_V2", "RFFT2D",
                       "STRIDED_SLICE", "SQRT", "SUB", "TRANSPOSE", "UNSORTED_SEGMENT_SUM"}


def _flags(**overrides) -> dict:
    return {**FEATURE_DEFAULTS, **overrides}


def _read_clips(paths) -> np.ndarray:
    """1 s float32 clips, zero-padded or trimmed the way the data pipeline does it."""
    clips = np.zeros((len(paths), CLIP_SAMPLES), np.float32)
    for row, path in enumerate(paths):
        audio, rate = sf.read(path, dtype="float32")
        assert rate == 16000, f"{path}: {rate} Hz"
        clips[row, :min(len(audio), CLIP_SAMPLES)] = audio[:CLIP_SAMPLES]
    return clips


@pytest.fixture(scope="module")
def real_clips(real_train_dir) -> np.ndarray:
    """Two clips from each of eight word folders of the real Speech Commands subset."""
    words = ("yes", "no", "up", "down", "left", "right", "stop", "bird")
    paths = [path for word in words
             for path in sorted((real_train_dir / word).glob("*.*"))[:2]]
    return _read_clips(paths)


@pytest.fixture(scope="module")
def synthetic_clips(request) -> np.ndarray:
    """Six clips of the project's offline TTS data set."""
    pytest.importorskip("data_setup.synthetic", reason="data_setup.synthetic not available")
    synthetic_dir = request.getfixturevalue("synthetic_dir")
    paths = sorted(p for p in synthetic_dir.glob("*/*") if p.suffix in (".wav", ".flac")
                   and not p.parent.name.startswith("_"))
    assert paths, f"no clips under {synthetic_dir}"
    return _read_clips(paths[::max(1, len(paths) // 6)][:6])


def _reference_log_mel(clips, flags):
    return reference.log_mel_spectrogram(
        clips, **{k: v for k, v in flags.items() if k != "dct_num_features"})


def _assert_layer_matches_reference(clips, flags):
    layer = MFCC(**flags)
    layer_mfcc = layer(clips).numpy()
    ref_mfcc = reference.mfcc(clips, **flags)
    assert layer_mfcc.shape == ref_mfcc.shape == (
        len(clips), layer.num_frames(clips.shape[1]), flags["dct_num_features"])
    log_mel_error = np.abs(layer.log_mel_spectrogram(clips).numpy()
                           - _reference_log_mel(clips, flags)).max()
    mfcc_error = np.abs(layer_mfcc - ref_mfcc).max()
    assert log_mel_error < LOG_MEL_TOLERANCE, f"log-mel max abs error {log_mel_error:.2e}"
    assert mfcc_error < MFCC_TOLERANCE, f"MFCC max abs error {mfcc_error:.2e}"


def test_sizes_and_defaults():
    assert FEATURE_DEFAULTS == dict(
        sample_rate=16000, window_size_ms=40.0, window_stride_ms=20.0, fft_magnitude_squared=True,
        mel_num_bins=80, mel_lower_edge_hertz=20.0, mel_upper_edge_hertz=7600.0,
        dct_num_features=40)
    assert (FRAME_SAMPLES, PACKET_SAMPLES) == (640, 320)
    assert [num_frames(n) for n in (16000, 640, 639, 960, 959)] == [49, 1, 0, 2, 1]
    layer = MFCC()
    assert (layer.frame_samples, layer.packet_samples, layer.fft_length) == (640, 320, 1024)
    assert layer.compute_output_shape((None, 16000)) == (None, 49, 40)
    # The reference is numpy-only; its defaults must stay the seed's flags.
    reference_defaults = {name: p.default for name, p in
                          inspect.signature(reference.mfcc).parameters.items() if name != "audio"}
    assert reference_defaults == FEATURE_DEFAULTS


def test_filterbank_follows_the_mfcc_op():
    """The layer's matrix (triangles) equals the reference's per-bin construction (op's way)."""
    weights = mel_weight_matrix()
    filterbank = reference.MelFilterbank()
    assert spectrogram_bin_range(513, 16000, 20.0, 7600.0) == (2, 486) == (
        filterbank.start_bin, filterbank.end_bin)
    assert not weights[:2].any() and not weights[487:].any()
    # A unit impulse at each bin through the reference's filterbank gives that bin's row.
    impulses = np.eye(513)
    np.testing.assert_allclose(filterbank(impulses), weights, atol=1e-12)
    # Peak 1 (not area-normalised); between the first and last peaks every bin's two weights
    # (falling side of one channel, rising side of the next) sum to 1.
    assert weights.max() <= 1.0 and weights.max(axis=0).min() > 0.4
    first_peak, last_peak = weights[:, 0].argmax(), weights[:, -1].argmax()
    np.testing.assert_allclose(weights[first_peak:last_peak].sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("flags", [
    _flags(), _flags(mel_num_bins=40, mel_upper_edge_hertz=4000.0),
    _flags(window_size_ms=25.0, window_stride_ms=10.0, mel_num_bins=23, mel_lower_edge_hertz=300.0,
           dct_num_features=13),
])
def test_compact_filterbank_is_the_dense_one(flags):
    """Two (channel, weight) pairs per bin rebuild the op's filterbank exactly."""
    bins = fft_length(MFCC(**flags).frame_samples) // 2 + 1
    start, end = spectrogram_bin_range(bins, flags["sample_rate"], flags["mel_lower_edge_hertz"],
                                       flags["mel_upper_edge_hertz"])
    dense = mel_weight_matrix(bins, flags["sample_rate"], flags["mel_num_bins"],
                              flags["mel_lower_edge_hertz"],
                              flags["mel_upper_edge_hertz"])[start:end + 1]
    channels, values = compact_filterbank(dense)
    assert channels.shape == (2, end + 1 - start) and channels.dtype == np.int32
    assert values.shape == (2, end + 1 - start, 1, 1) and values.dtype == np.float32
    rebuilt = np.zeros_like(dense)
    for slot in range(2):
        np.add.at(rebuilt, (np.arange(len(dense)), channels[slot]), values[slot, :, 0, 0])
    np.testing.assert_allclose(rebuilt, dense, atol=1e-7, rtol=0)  # float32 weights
    with pytest.raises(ValueError, match="at most two adjacent channels"):
        compact_filterbank(np.array([[1.0, 0.0, 1.0]]))


@pytest.mark.parametrize("mel_num_bins,dct_num_features", [(80, 40), (80, 30), (40, 13),
                                                           (23, 13), (80, 80)])
def test_split_dct_is_the_dense_one(monkeypatch, mel_num_bins, dct_num_features):
    from kwsnb.features import mfcc as mfcc_module

    monkeypatch.setattr(mfcc_module, "SPLIT_DCT", True)
    layer = MFCC(mel_num_bins=mel_num_bins, dct_num_features=dct_num_features,
                 mel_upper_edge_hertz=7600.0 if mel_num_bins > 30 else 4000.0)
    assert (layer._dct["dense"] is None) == (mel_num_bins % 2 == 0)
    log_mel = np.random.default_rng(0).normal(-5.0, 8.0, (3, 7, mel_num_bins)).astype(np.float32)
    expected = log_mel.astype(np.float64) @ dct_matrix(mel_num_bins, dct_num_features)
    np.testing.assert_allclose(layer.dct(tf.constant(log_mel)).numpy(), expected, atol=2e-4,
                               rtol=0)
    split = split_dct(mel_num_bins, dct_num_features)
    assert (split["dense"] is None) == (mel_num_bins % 2 == 0)


@pytest.mark.real_data
def test_front_end_constants_are_compact(real_clips):
    """The TFLite front end holds ~23 KB of constants (window, compact filterbank, DCT), not
    the dense 485 x 80 filterbank (155 KB); it still matches the reference, and the layer's
    only weights are the two saved with every model."""
    from ai_edge_litert.interpreter import Interpreter

    from kwsnb.tflite.export import front_end_constant_bytes

    for num_samples in (16000, FRAME_SAMPLES):
        audio = keras.Input(shape=(num_samples,), batch_size=1)
        layer = MFCC(name="mfcc")
        # A layer after the front end, as in a real model: the converter names the graph's
        # output tensor after the signature, which would hide the DCT from the mfcc scope.
        model = keras.Model(audio, keras.layers.Reshape((-1, 1))(layer(audio)))
        content = _convert(model)
        # window 640 + filterbank 2 x 485 weights + 2 x 485 int32 ids + DCT 80 x 40, float32
        constant_bytes = front_end_constant_bytes(content, "mfcc")
        assert 4 * (640 + 4 * 485 + 80 * 40) <= constant_bytes < 24_500, constant_bytes
        assert len(content) < 30_000
        interpreter = Interpreter(model_content=content, num_threads=1)
        interpreter.allocate_tensors()
        clip = real_clips[:1, :num_samples]
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], clip)
        interpreter.invoke()
        features = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        np.testing.assert_allclose(features.reshape(1, -1, 40), reference.mfcc(clip),
                                   atol=MFCC_TOLERANCE, rtol=0)
    assert [w.path.split("/")[-1] for w in layer.weights] == ["coefficient_mean",
                                                              "coefficient_scale"]


@pytest.mark.real_data
@pytest.mark.parametrize("flags", [_flags(), _flags(window_size_ms=25.0, window_stride_ms=10.0,
                                                    mel_num_bins=40, mel_upper_edge_hertz=4000.0,
                                                    dct_num_features=20)])
def test_reference_matches_the_seed_tensorflow_ops(real_clips, flags):
    """The reference reproduces TF's AudioSpectrogram + Mfcc kernels (the seed's mfcc_op)."""
    if not (hasattr(tf.raw_ops, "AudioSpectrogram") and hasattr(tf.raw_ops, "Mfcc")):
        pytest.skip("this TensorFlow has no AudioSpectrogram/Mfcc ops")
    window, stride = reference.window_and_stride(
        flags["sample_rate"], flags["window_size_ms"], flags["window_stride_ms"])
    for squared in (True, False):
        spectrogram = tf.raw_ops.AudioSpectrogram(input=real_clips.T, window_size=window,
                                                  stride=stride, magnitude_squared=squared)
        seed = tf.raw_ops.Mfcc(spectrogram=spectrogram, sample_rate=flags["sample_rate"],
                               upper_frequency_limit=flags["mel_upper_edge_hertz"],
                               lower_frequency_limit=flags["mel_lower_edge_hertz"],
                               filterbank_channel_count=flags["mel_num_bins"],
                               dct_coefficient_count=flags["dct_num_features"]).numpy()
        ref = reference.mfcc(real_clips, **{**flags, "fft_magnitude_squared": squared})
        # The ops compute in double and return float32: agreement to float32 rounding.
        np.testing.assert_allclose(ref, seed, atol=2e-5, rtol=0)


@pytest.mark.real_data
@pytest.mark.parametrize("fft_magnitude_squared", [True, False])
@pytest.mark.parametrize("dct_num_features", [30, 40])
def test_layer_matches_reference_on_real_audio(real_clips, fft_magnitude_squared, dct_num_features):
    _assert_layer_matches_reference(real_clips, _flags(fft_magnitude_squared=fft_magnitude_squared,
                                                       dct_num_features=dct_num_features))


@pytest.mark.real_data
def test_other_framing_and_filterbank_flags(real_clips):
    """25 ms / 10 ms (400 / 160 samples: 5 blocks of 80 per frame, 512-point FFT), 40 bins."""
    flags = _flags(window_size_ms=25.0, window_stride_ms=10.0, mel_num_bins=40,
                   mel_upper_edge_hertz=4000.0, dct_num_features=20)
    assert MFCC(**flags).fft_length == 512
    _assert_layer_matches_reference(real_clips, flags)


@pytest.mark.parametrize("fft_magnitude_squared", [True, False])
def test_layer_matches_reference_on_synthetic_speech(synthetic_clips, fft_magnitude_squared):
    _assert_layer_matches_reference(synthetic_clips,
                                    _flags(fft_magnitude_squared=fft_magnitude_squared))


def test_silence_gives_the_log_floor():
    silence = np.zeros((2, CLIP_SAMPLES), np.float32)
    layer = MFCC()
    np.testing.assert_allclose(layer.log_mel_spectrogram(silence).numpy(), math.log(LOG_FLOOR))
    features = layer(silence).numpy()
    # Constant log-mel: only c0 is nonzero, sqrt(2/80) * 80 * ln(1e-12) = -349.5.
    np.testing.assert_allclose(features[..., 0], math.sqrt(2 / 80) * 80 * math.log(LOG_FLOOR),
                               rtol=1e-6)
    np.testing.assert_allclose(features[..., 1:], 0.0, atol=MFCC_TOLERANCE)
    np.testing.assert_allclose(features, reference.mfcc(silence), atol=MFCC_TOLERANCE, rtol=0)


@pytest.mark.real_data
def test_loud_audio(real_clips):
    # Peak-normalised to full scale: float32 errors are relative, so the same tolerances hold.
    full_scale = real_clips / np.abs(real_clips).max(axis=1, keepdims=True)
    _assert_layer_matches_reference(full_scale, _flags())

    # 30x gain, hard-clipped to +-1: saturated stretches (with DC offset) put some channels
    # >100 dB below the frame's loudest, into float32 FFT rounding; compare within 80 dB.
    saturated = np.clip(real_clips * 30.0, -1.0, 1.0)
    layer_log_mel = MFCC().log_mel_spectrogram(saturated).numpy()
    ref_log_mel = _reference_log_mel(saturated, _flags())
    within_80_db = ref_log_mel > ref_log_mel.max(axis=-1, keepdims=True) - 80 / (20 / math.log(10))
    error = np.abs(layer_log_mel - ref_log_mel)[within_80_db]
    assert within_80_db.mean() > 0.95 and error.max() < LOG_MEL_TOLERANCE


@pytest.mark.real_data
def test_streaming_frame_by_frame_equals_whole_clip(real_clips):
    """A 320-sample ring buffer + each new 320-sample packet gives the whole-clip frames."""
    layer = MFCC()
    whole = layer(real_clips[:4]).numpy()

    audio = keras.Input(shape=(FRAME_SAMPLES,))
    frame_model = keras.Model(audio, layer(audio))
    assert frame_model.output.shape == (None, 1, 40)

    ring_buffer = np.zeros((4, FRAME_SAMPLES - PACKET_SAMPLES), np.float32)
    streamed = []
    for start in range(0, CLIP_SAMPLES, PACKET_SAMPLES):
        window = np.concatenate([ring_buffer, real_clips[:4, start:start + PACKET_SAMPLES]], axis=1)
        streamed.append(frame_model(window).numpy())
        ring_buffer = window[:, PACKET_SAMPLES:]
    streamed = np.concatenate(streamed, axis=1)
    # The first packet completes a half-zero window; after it come exactly the clip's 49 frames.
    assert streamed.shape == (4, 50, 40)
    np.testing.assert_allclose(streamed[:, 1:], whole, atol=1e-4, rtol=0)


def _convert(model) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


@pytest.mark.real_data
@pytest.mark.parametrize("num_samples,flags", [
    (16000, _flags()),
    (640, _flags(fft_magnitude_squared=False, dct_num_features=30)),  # one streaming frame
    (16000, _flags(window_size_ms=25.0, window_stride_ms=10.0, mel_num_bins=40,
                   mel_upper_edge_hertz=4000.0, dct_num_features=20)),
])
def test_tflite_builtins_only(real_clips, num_samples, flags):
    from ai_edge_litert.interpreter import Interpreter

    audio = keras.Input(shape=(num_samples,))
    model = keras.Model(audio, MFCC(**flags)(audio))
    interpreter = Interpreter(model_content=_convert(model), num_threads=1)
    op_names = {op["op_name"] for op in interpreter._get_ops_details()}
    assert op_names <= EXPECTED_TFLITE_OPS | {"DELEGATE"}, op_names
    assert "RFFT2D" in op_names and not any("FLEX" in n.upper() or "CUSTOM" in n.upper()
                                             for n in op_names)

    clip = real_clips[:1, :num_samples]
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], clip)
    interpreter.invoke()
    tflite_features = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    assert tflite_features.shape == (1, MFCC(**flags).num_frames(num_samples),
                                     flags["dct_num_features"])
    np.testing.assert_allclose(tflite_features, model(clip).numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(tflite_features, reference.mfcc(clip, **flags),
                               atol=MFCC_TOLERANCE, rtol=0)


def test_keras_serialization_round_trip(tmp_path):
    flags = _flags(fft_magnitude_squared=False, dct_num_features=30, mel_upper_edge_hertz=7000.0)
    layer = MFCC(**flags)
    assert {k: layer.get_config()[k] for k in flags} == flags
    audio = keras.Input(shape=(CLIP_SAMPLES,))
    model = keras.Model(audio, layer(audio))
    model.save(tmp_path / "front_end.keras")
    restored = keras.saving.load_model(tmp_path / "front_end.keras")
    chirp = np.sin(2 * np.pi * np.cumsum(np.linspace(100, 7000, CLIP_SAMPLES)) / 16000)
    chirp = chirp[None].astype(np.float32)
    np.testing.assert_array_equal(restored(chirp).numpy(), model(chirp).numpy())
    # The weights are the non-trainable normalization, the identity until adapted.
    assert [w.name for w in model.weights] == ["coefficient_mean", "coefficient_scale"]
    assert not model.trainable_weights
    np.testing.assert_array_equal(layer.coefficient_mean.numpy(), np.zeros(30))
    np.testing.assert_array_equal(layer.coefficient_scale.numpy(), np.ones(30))


def test_adapt_centres_and_caps_coefficient_spreads(synthetic_clips):
    layer = MFCC()
    unscaled = layer(synthetic_clips).numpy()  # not adapted yet: the seed's MFCCs
    np.testing.assert_allclose(unscaled, reference.mfcc(synthetic_clips), atol=MFCC_TOLERANCE,
                               rtol=0)
    spread = unscaled.std(axis=(0, 1))
    assert spread[0] > 20 * spread[-1]  # why adapt exists: coefficient 0 dwarfs the others
    mean, scale = layer.adapt(synthetic_clips, batch_size=4)
    adapted = layer(synthetic_clips).numpy()
    np.testing.assert_allclose(adapted, (unscaled - mean) * scale, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(adapted.mean(axis=(0, 1)), 0.0, atol=1e-3)
    # Coefficient 0 is brought down to the widest other spread; the others keep theirs.
    ceiling = spread[1:].max()
    np.testing.assert_allclose(adapted.std(axis=(0, 1))[0], ceiling, rtol=1e-3)
    np.testing.assert_allclose(adapted.std(axis=(0, 1))[1:], spread[1:], rtol=1e-3)
    assert scale[0] < 0.5 and np.all(scale[1:] == 1.0)
    with pytest.raises(ValueError, match="adapt needs audio shaped"):
        layer.adapt(synthetic_clips[0])


@pytest.mark.parametrize("flags,named", [
    (dict(mel_upper_edge_hertz=8001.0), "mel_upper_edge_hertz"),
    (dict(mel_upper_edge_hertz=20.0), "mel_upper_edge_hertz"),
    (dict(mel_lower_edge_hertz=-1.0), "mel_lower_edge_hertz"),
    (dict(dct_num_features=81), "dct_num_features"),
    (dict(dct_num_features=0), "dct_num_features"),
    (dict(mel_num_bins=0), "mel_num_bins"),
    (dict(window_size_ms=10.0), "window_size_ms"),
    (dict(window_stride_ms=0.0), "window_stride_ms"),
    (dict(sample_rate=0), "sample_rate"),
    (dict(fft_magnitude_squared="yes"), "fft_magnitude_squared"),
])
def test_bad_flags_name_the_flag(flags, named):
    with pytest.raises(ValueError, match=named):
        MFCC(**flags)


def test_bad_input_shapes():
    with pytest.raises(ValueError, match="shorter than one window"):
        MFCC()(keras.Input(shape=(639,)))
    with pytest.raises(ValueError, match=r"\[batch, samples\]"):
        MFCC()(keras.Input(shape=(16000, 1)))


def test_too_many_mel_bins_warns():
    with pytest.warns(UserWarning, match="mel_num_bins=256"):
        MFCC(mel_num_bins=256, dct_num_features=40)
