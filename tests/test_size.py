"""Smaller flatbuffers (kwsnb.tflite.convert.compact_flatbuffer) and the size breakdown benchmark:
the same numbers from fewer bytes, in LiteRT and in TensorFlow Lite Micro."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
MODELS_DIR = REPO / "models"
FORMATS = ("tflite_int8", "tflite_features_int8", "tflite_stream_external_int8",
           "tflite_stream_internal_float", "tflite_float")


def _committed(arch: str, name: str) -> bytes:
    path = MODELS_DIR / arch / name / "model.tflite"
    if not path.is_file():
        pytest.skip(f"{path} not committed")
    return path.read_bytes()


def _outputs(content: bytes, feed: dict) -> dict:
    from kwsnb.tflite.runtime import make_interpreter

    interpreter = make_interpreter(content)
    runner = interpreter.get_signature_runner()
    return runner(**feed)


def _random_feed(content: bytes) -> dict:
    from kwsnb.tflite.runtime import make_interpreter

    rng = np.random.default_rng(0)
    details = make_interpreter(content).get_signature_runner().get_input_details()
    return {name: (rng.integers(-128, 128, d["shape"]).astype(np.int8) if d["dtype"] == np.int8
                   else (0.1 * rng.standard_normal(d["shape"])).astype(d["dtype"]))
            for name, d in details.items()}


def _small_model():
    import keras

    inputs = keras.Input((6, 4), name="x")
    hidden = keras.layers.Dense(5, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(hidden)))


def test_compact_keeps_outputs_and_drops_unused_tensors_and_buffers():
    from kwsnb.tflite import convert, flatbuffer
    from kwsnb.tflite.runtime import tflite_schema

    model = _small_model()
    content = convert.convert_model(model, "small", input_signature=convert.batch_one_signature(
        model))
    schema = tflite_schema()
    # An orphan constant (what a flatbuffer repair leaves behind) must go.
    parsed = schema.ModelT.InitFromPackedBuf(content, 0)
    orphan = schema.BufferT()
    orphan.data = np.arange(4000, dtype=np.uint8)
    parsed.buffers.append(orphan)
    tensor = schema.TensorT()
    tensor.shape, tensor.type = np.array([1000], np.int32), schema.TensorType.FLOAT32
    tensor.buffer = len(parsed.buffers) - 1
    parsed.subgraphs[0].tensors.append(tensor)
    padded = flatbuffer.pack_shared(parsed)
    compact = convert.compact_flatbuffer(padded)
    assert len(compact) < len(content) < len(padded)
    feed = _random_feed(content)
    for key, value in _outputs(content, feed).items():
        np.testing.assert_array_equal(_outputs(compact, feed)[key], value)
    result = schema.ModelT.InitFromPackedBuf(compact, 0)
    assert len(result.subgraphs[0].tensors) == len(parsed.subgraphs[0].tensors) - 1
    assert not result.metadata
    data = [b.data for b in result.buffers]
    assert data[0] is None or len(data[0]) == 0
    # One buffer per constant, plus the empty buffer 0 every activation shares.
    constants = sum(d is not None and len(d) > 0 for d in data)
    assert len(result.buffers) == constants + 1
    # Twice is the same as once.
    assert convert.compact_flatbuffer(compact) == compact


@pytest.mark.parametrize("name", FORMATS)
def test_compact_committed_models_compute_the_same(name):
    from kwsnb.tflite import convert

    content = _committed("tc_resnet", name)
    compact = convert.compact_flatbuffer(content)
    assert len(compact) <= len(content)
    feed = _random_feed(content)
    expected = _outputs(content, feed)
    for key, value in _outputs(compact, feed).items():
        np.testing.assert_array_equal(value, expected[key])


def test_compact_features_int8_runs_in_tflm_as_before():
    pytest.importorskip("tflite_micro.python.tflite_micro.runtime",
                        reason="tflite-micro not installed")
    from kwsnb import micro
    from kwsnb.tflite import convert

    content = _committed("inception", "tflite_features_int8")
    compact = convert.compact_flatbuffer(content)
    check = micro.tflm_check(compact)
    assert check["runs"], check["error"]
    rng = np.random.default_rng(1)
    inputs = {k: rng.integers(-128, 128, v.shape).astype(np.int8)
              for k, v in micro.runtime._zero_inputs(micro.TFLMRunner(compact)).items()}
    ours, theirs = micro.TFLMRunner(compact).run(inputs), micro.TFLMRunner(content).run(inputs)
    for key, value in theirs.items():
        np.testing.assert_array_equal(ours[key], value)


def test_size_breakdown_accounts_for_the_file(capsys):
    sys.path.insert(0, str(REPO / "benchmarks"))
    import tflite_size_breakdown

    content = _committed("tc_resnet", "tflite_int8")
    info = tflite_size_breakdown.breakdown(content)
    assert info["file"] == len(content)
    assert sum(size for size, _ in info["groups"].values()) == info["constants"]
    assert ("front end", "FLOAT32") in info["groups"]
    tflite_size_breakdown.main([str(MODELS_DIR / "tc_resnet" / "tflite_int8" / "model.tflite")])
    assert "constant buffers" in capsys.readouterr().out


def test_int16_rows_keep_row_sums_and_steps():
    from kwsnb.tflite import convert
    from kwsnb.features import dct_matrix

    matrix = dct_matrix(80, 40).T.astype(np.float32)  # FULLY_CONNECTED layout [out, in]
    codes, scale = convert._int16_rows(matrix, keep_row_sums=True)
    assert codes.dtype == np.int16 and np.abs(codes).max() <= 32767
    assert np.abs(codes * scale - matrix).max() <= scale  # at most one step off
    np.testing.assert_array_equal(codes.sum(axis=1, dtype=np.int64),
                                  np.round(matrix.astype(np.float64).sum(axis=1) / scale))


def _front_end_only(samples: int = 16000) -> bytes:
    import keras

    from kwsnb.tflite import convert
    from kwsnb.features import MFCC

    audio = keras.Input((samples,), batch_size=1, name="audio")
    return convert.convert_model(keras.Model(audio, MFCC()(audio)), "front end")


def test_int16_mel_weights_halve_their_bytes_and_keep_the_mfccs(real_test_dir):
    from kwsnb.tflite import convert
    from kwsnb.tflite.runtime import operator_names

    content = _front_end_only()
    names = convert.front_end_tensor_names(content)
    smaller = convert.compact_flatbuffer(convert.int16_front_end_constants(content, names))
    assert "DEQUANTIZE" in operator_names(smaller)
    # 485 x 2 weights: 3,880 bytes float32, 1,940 int16.
    assert len(convert.compact_flatbuffer(content)) - len(smaller) > 1700  # op, tensor: ~140 B
    assert convert.front_end_constant_bytes(smaller) \
        == convert.front_end_constant_bytes(content) - 1940
    convert.check_front_end_float(smaller, convert.front_end_tensor_names(smaller), "front end")
    # Applied twice: nothing left to do.
    assert convert.int16_front_end_constants(smaller, convert.front_end_tensor_names(smaller)) \
        == smaller

    import soundfile as sf

    files = sorted(real_test_dir.glob("*/*.wav"))[:20]
    audio = np.zeros((len(files), 16000), np.float32)
    for row, path in enumerate(files):
        clip = sf.read(path, dtype="float32")[0][:16000]
        audio[row, :len(clip)] = clip
    for clip in audio:
        feed = {"audio": clip[np.newaxis]}
        (float_mfcc,), (int16_mfcc,) = (list(_outputs(c, feed).values())
                                        for c in (content, smaller))
        # MFCCs span about -350..+50; float32 rounding alone gives ~3e-4.
        np.testing.assert_allclose(int16_mfcc, float_mfcc, atol=5e-4, rtol=0)


@pytest.mark.parametrize("arch", ["inception", "svdf_resnet", "mobilenet_v2"])
def test_fewer_reshapes_keeps_features_int8_outputs_bit_identical(arch, real_train_dir):
    """kwsnb.tflite.flatbuffer: 4-D tensors between the 2-D ops, identity ops dropped; the same int8
    logits in LiteRT (and, when installed, TFLM) for random int8 MFCCs, fewer ops and bytes.
    The converter's own features-in model (from the committed weights, calibrated on real
    clips) against the rewrite; the committed file has nothing left to rewrite."""
    from kwsnb.tflite import convert, flatbuffer
    from kwsnb.tflite import export as exporting
    from kwsnb import train as training
    from kwsnb.data import load_clip
    from kwsnb.tflite.runtime import tflite_schema

    committed = _committed(arch, "tflite_features_int8")
    assert flatbuffer.fewer_reshapes(committed)[1] == 0
    model, _ = training.load_trained_model(MODELS_DIR / arch)
    files = [p for word in ("yes", "no", "left", "stop")
             for p in sorted((real_train_dir / word).iterdir())[:8]]
    audio = np.stack([load_clip(path) for path in files])
    content = exporting.convert_features_int8(model, audio)  # before kwsnb.tflite.flatbuffer
    new = convert.compact_flatbuffer(
        flatbuffer.fewer_reshapes(flatbuffer.drop_identity_ops(content)[0])[0])
    assert flatbuffer.fewer_reshapes(new)[1] == 0  # nothing left to do
    rng = np.random.default_rng(0)
    for _ in range(5):
        feed = _random_feed(content) if _ == 0 else {
            k: rng.integers(-128, 128, v.shape).astype(np.int8) for k, v in feed.items()}
        old_out, new_out = _outputs(content, feed), _outputs(new, feed)
        assert all(np.array_equal(old_out[k], new_out[k]) for k in old_out)
    schema = tflite_schema()
    count = lambda c: len(schema.ModelT.InitFromPackedBuf(c, 0).subgraphs[0].operators)  # noqa
    assert count(new) < count(content) and len(new) < len(content)
    tflm = pytest.importorskip("tflite_micro.python.tflite_micro.runtime",
                               reason="tflite-micro (the test extra) is not installed")
    (x,) = feed.values()
    results = []
    for c in (content, new):
        interpreter = tflm.Interpreter.from_bytes(c, arena_size=200_000)
        interpreter.set_input(x, 0)
        interpreter.invoke()
        results.append(interpreter.get_output(0).copy())
    assert np.array_equal(*results)
