"""kwsnb.tflite.export: every TFLite format of a real architecture, on real speech.

The model is a small tc_resnet (about 8k parameters) from ``kwsnb.models``. Fast tests use it
untrained (conversion, op checks, error messages); the slow ones train it in seconds on four
words of ../shared/data (the front end has no weights, so the body is fitted on precomputed
MFCCs) and check that quantized formats keep its accuracy. ``small_model``, ``keyword_task``
and ``exported_formats`` are shared with tests/test_evaluate.py (cached per session).
"""
from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from kwsnb import streaming

WORDS = ("yes", "no", "up", "down")
# Folders of the official test layout that are not labels of the four-word task.
TEST_EXCLUDE = ("_silence_", "_unknown_", "left", "right", "stop", "go", "on", "off")
SMALL_FLAGS = dict(label_count=len(WORDS), channels=[16, 24, 24], dct_num_features=20,
                   bn_momentum=0.9)
# Quantized formats may lose at most this much accuracy against float (points of %).
QUANTIZED_MARGIN = 0.03


def small_model():
    from kwsnb import models

    return models.build("tc_resnet", **SMALL_FLAGS)


@dataclass
class KeywordTask:
    model: object               # trained non-stream Keras model
    labels: list
    train_audio: np.ndarray     # training clips (calibration data)
    test_audio: np.ndarray      # ../shared/data test folder, the four words
    test_labels: np.ndarray


@functools.lru_cache(maxsize=1)
def keyword_task(train_dir: str, test_dir: str) -> KeywordTask:
    """small_model() trained for 300 steps on yes/no/up/down (about 90% on the test folder)."""
    import keras

    from kwsnb import data, streaming
    from kwsnb.tflite import export as exporting

    dataset = data.SpeechCommands(train_dir, wanted_words=WORDS, silence_percentage=0,
                                  unknown_percentage=0, progress=False)
    train_audio, train_labels = dataset.arrays("training")
    test_audio, test_labels = data.read_test_folder(test_dir, dataset.labels, TEST_EXCLUDE,
                                                    progress=False)
    keras.utils.set_random_seed(0)
    model = small_model()
    streaming.mfcc_of(streaming.front_end_layer(model)).adapt(train_audio[::4])  # as training does
    front_end, body = streaming.split_front_end(model)
    features = front_end.predict(train_audio, batch_size=200, verbose=0)
    body.compile(keras.optimizers.Adam(3e-3),
                 keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    body.fit(features, train_labels, epochs=6, batch_size=64, verbose=0)
    return KeywordTask(model, list(dataset.labels), train_audio, test_audio, test_labels)


@functools.lru_cache(maxsize=1)
def exported_formats(train_dir: str, test_dir: str) -> dict[str, Path]:
    """Every format of keyword_task's model, exported once per test session (in a temporary
    folder removed at exit)."""
    from kwsnb.tflite import export as exporting

    task = keyword_task(train_dir, test_dir)
    out_dir = Path(tempfile.mkdtemp(prefix="kwsnb_test_export_"))
    atexit.register(shutil.rmtree, out_dir, ignore_errors=True)
    return exporting.export(task.model, out_dir, task.train_audio, task.labels)


@pytest.fixture(scope="module")
def task(real_train_dir, real_test_dir) -> KeywordTask:
    return keyword_task(str(real_train_dir), str(real_test_dir))


@pytest.fixture(scope="module")
def exported(real_train_dir, real_test_dir) -> dict[str, Path]:
    return exported_formats(str(real_train_dir), str(real_test_dir))


@pytest.fixture(scope="module")
def clips(request) -> np.ndarray:
    """A few real clips: ../shared/data when present, else the synthetic TTS set."""
    from kwsnb import data

    try:
        folder = request.getfixturevalue("real_train_dir")
    except pytest.skip.Exception:
        folder = request.getfixturevalue("synthetic_dir")
    paths = sorted(folder.glob("yes/*.*"))[:8] + sorted(folder.glob("no/*.*"))[:8]
    return np.stack([data.load_clip(path) for path in paths])


@pytest.fixture(scope="module")
def untrained():
    """(model, its float TFLite model): conversion checks need no training."""
    from kwsnb.tflite import convert

    model = small_model()
    return model, convert.convert_float(model)


def _run(content: bytes, inputs: np.ndarray) -> np.ndarray:
    from kwsnb.tflite.runtime import TFLiteModel, predict_non_stream

    return predict_non_stream(TFLiteModel(content), inputs)


# ---------------------------------------------------------------------------------------------
# Fast: conversion of an untrained model, op checks, errors
# ---------------------------------------------------------------------------------------------

def test_float_and_int8_are_builtin_and_keep_the_front_end_float(untrained, clips):
    from kwsnb.tflite import convert, export as exporting, runtime

    model, float_content = untrained
    int8_content = exporting.convert_int8(model, clips, float_content)
    front_end = convert.front_end_tensor_names(float_content)
    for content in (float_content, int8_content):
        ops = runtime.check_builtin_ops(content)
        assert {"RFFT2D", "COMPLEX_ABS", "LOG"} <= set(ops)
    # The body is int8 (QUANTIZE before it), every front-end op reads and writes float.
    assert "QUANTIZE" in exporting.operator_names(int8_content)
    convert.check_front_end_float(int8_content, front_end, "int8")
    # Float TFLite computes what Keras computes.
    expected = model.predict(clips, verbose=0)
    np.testing.assert_allclose(_run(float_content, clips), expected, rtol=1e-4,
                               atol=1e-4 * np.abs(expected).max())


def test_front_end_region_covers_framing_fft_mel_log_and_dct(untrained):
    from kwsnb.tflite import convert, runtime

    _, content = untrained
    names = convert.front_end_tensor_names(content)
    assert any("mfcc" in name for name in names)
    assert not any("conv" in name.split(";")[0] for name in names), "body ops in the front end"
    interpreter = runtime.make_interpreter(content)
    ops = {op["index"]: op for op in interpreter._get_ops_details()}
    tensors = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    front_end_ops = {ops[i]["op_name"] for i in ops
                     if any(tensors[o] in names for o in ops[i]["outputs"])}
    assert {"RFFT2D", "COMPLEX_ABS", "UNSORTED_SEGMENT_SUM", "FULLY_CONNECTED", "LOG"} <= front_end_ops
    # The window (640 floats), the compact filterbank (485 bins x 2 weights and 2 channel ids)
    # and the DCT (80 x 20 floats), not a dense 485 x 80 filterbank (155 KB).
    assert 2_560 + 7_760 + 6_400 <= convert.front_end_constant_bytes(content) < 18_000


def test_dynamic_range_keeps_front_end_weights_float(untrained, clips):
    from kwsnb.tflite import convert, export as exporting

    model, float_content = untrained
    dynamic = exporting.convert_dynamic(model, float_content)
    convert.check_front_end_float(dynamic, convert.front_end_tensor_names(float_content),
                                    "dynamic")
    # Front end exact, body weights int8: outputs close to float, model smaller.
    assert len(dynamic) < len(float_content)
    reference = _run(float_content, clips)
    np.testing.assert_allclose(_run(dynamic, clips), reference,
                               atol=0.05 * np.abs(reference).max())


def _dynamic_without_restore(model):
    import tensorflow as tf

    from kwsnb.tflite import convert

    def configure(converter):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

    return convert.convert_model(model, "dynamic-range model", configure)


def _renamed_constants(content: bytes) -> bytes:
    """``content`` with every constant tensor named as TensorFlow 2.20's converter names the
    weights it quantizes ("tfl.pseudo_qconst<k>"), where 2.21 keeps the op's name."""
    import flatbuffers

    from kwsnb.tflite import runtime

    model = runtime.tflite_schema().ModelT.InitFromPackedBuf(content, 0)
    graph = model.subgraphs[0]
    for k, tensor in enumerate(graph.tensors):
        data = model.buffers[tensor.buffer].data
        if data is not None and len(data):
            tensor.name = f"tfl.pseudo_qconst{k}".encode()
    builder = flatbuffers.Builder(len(content) * 2)
    builder.Finish(model.Pack(builder), file_identifier=runtime.TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def test_dynamic_range_finds_front_end_weights_by_role_not_name(untrained, clips):
    from kwsnb.tflite import convert, export as exporting

    model, float_content = untrained
    front_end = convert.front_end_tensor_names(float_content)
    raw = _dynamic_without_restore(model)
    expected = _run(exporting._restore_float_weights(raw, float_content, front_end), clips)
    # TensorFlow 2.20's names for the quantized weights match nothing in the float model.
    restored = exporting._restore_float_weights(_renamed_constants(raw), float_content, front_end)
    convert.check_front_end_float(restored, front_end, "dynamic")
    np.testing.assert_array_equal(_run(restored, clips), expected)


def test_dynamic_range_refuses_float_weights_that_are_not_its_own(untrained):
    from kwsnb import models
    from kwsnb.tflite import convert, export as exporting
    from kwsnb.tflite.runtime import ExportError

    model, _ = untrained
    # The float model of another front end (13 coefficients, not 20): the same ops, other
    # DCT weights. Pairing by role finds the slot; the shape check must refuse it.
    other = convert.convert_float(models.build("tc_resnet", **{**SMALL_FLAGS,
                                                               "dct_num_features": 13}))
    raw = _dynamic_without_restore(model)
    with pytest.raises(ExportError, match=r"dynamic-range model: .*TensorFlow 2\.20 and 2\.21, "
                                          r"this is \d+\.\d+"):
        exporting._restore_float_weights(raw, other, convert.front_end_tensor_names(other))


def test_missing_converter_internals_stop_with_the_tensorflow_version(monkeypatch):
    import tensorflow as tf
    from tensorflow.lite.python import convert as tflite_convert

    from kwsnb.tflite import stack
    from kwsnb.tflite.runtime import ExportError

    class OlderConverter:  # a release without the option: setting it would change nothing
        pass

    with pytest.raises(ExportError, match=rf"no option '_experimental_calibrate_only'.*this is "
                                          rf"{tf.__version__}"):
        stack.set_private_option(OlderConverter(), "_experimental_calibrate_only", True)
    monkeypatch.setattr(tflite_convert, "mlir_quantize", lambda model, fully_quantize=False: model)
    with pytest.raises(ExportError, match=r"mlir_quantize lacks \['denylisted_nodes', "
                                          r"'disable_per_channel'"):
        stack.mlir_quantize()
    monkeypatch.delattr(tflite_convert, "mlir_quantize")
    with pytest.raises(ExportError, match="mlir_quantize is gone"):
        stack.mlir_quantize()


def test_a_tensor_without_a_shared_range_stops_the_export(untrained, clips):
    """force_ranges keys tensors by converter names; one that matches nothing would keep a
    range of its own and the formats would quantize it differently: an error, not a default."""
    from kwsnb.tflite import quantize
    from kwsnb.tflite.runtime import ExportError

    model, _ = untrained
    shared = quantize.SharedQuantization.from_model(model, clips)
    shared.features_int8(model, clips)  # every tensor matched
    assert not shared.reports["tflite_features_int8"].unmatched
    renamed = quantize.Ranges({key + "_renamed": value
                               for key, value in shared.ranges.by_key.items()})
    with pytest.raises(ExportError, match=r"features-in int8 model: \d+ tensor\(s\) match no "
                                          r"tensor.*TensorFlow 2\.20 and 2\.21"):
        quantize.SharedQuantization(shared.calibrated, renamed).features_int8(model, clips)


def test_features_int8_model_has_int8_io(untrained, clips):
    from kwsnb.tflite import export as exporting

    content = exporting.convert_features_int8(untrained[0], clips)
    io = exporting.describe_io(content)
    (features,) = io["inputs"].values()
    (logits,) = io["outputs"].values()
    assert features["dtype"] == "int8" and features["shape"] == [1, 49, 20]
    assert logits["dtype"] == "int8" and logits["shape"] == [1, len(WORDS)]
    assert features["scale"] > 0 and -128 <= features["zero_point"] <= 127
    assert not {"RFFT2D", "LOG"} & set(exporting.operator_names(content)), "front end included"


def test_adapted_front_end_gives_int8_features_fine_steps(clips):
    """One int8 scale covers every coefficient: unadapted, coefficient 0 (about -350..40) sets a
    step that leaves the small coefficients a few levels; adapted (centred, coefficient 0 capped
    at the others' spread), the step is several times finer."""
    from kwsnb.tflite import export as exporting

    model = small_model()
    front_end = streaming.mfcc_of(streaming.front_end_layer(model))

    def features_step():
        (features,) = exporting.describe_io(
            exporting.convert_features_int8(model, clips))["inputs"].values()
        return features["scale"]

    raw_step = features_step()
    front_end.adapt(clips)
    adapted_step = features_step()
    assert raw_step > 0.5 and adapted_step < raw_step / 4, (raw_step, adapted_step)


def test_model_needing_non_builtin_ops_is_refused():
    import keras
    import tensorflow as tf

    from kwsnb.tflite import convert, export as exporting

    # tf.signal's MFCC op needs Flex ops in TFLite (stack_notes.md).
    audio = keras.Input((16000,))
    mel = keras.layers.Lambda(lambda x: tf.math.log(tf.abs(tf.signal.stft(x, 640, 320, 1024))
                                                    [..., :80] + 1e-6))(audio)
    mfcc = keras.layers.Lambda(tf.signal.mfccs_from_log_mel_spectrograms)(mel)
    model = keras.Model(audio, keras.layers.Dense(4)(keras.layers.Flatten()(mfcc)))
    with pytest.raises(exporting.ExportError, match="no builtin TFLite kernel"):
        convert.convert_float(model)


def test_custom_ops_in_a_flatbuffer_are_refused():
    import keras
    import tensorflow as tf

    from kwsnb.tflite import export as exporting, runtime

    audio = keras.Input((16000,))
    mfcc = keras.layers.Lambda(tf.signal.mfccs_from_log_mel_spectrograms)(
        keras.layers.Reshape((50, 320))(audio))
    model = keras.Model(audio, mfcc)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.allow_custom_ops = True
    content = converter.convert()
    with pytest.raises(exporting.ExportError, match="non-builtin TFLite ops"):
        runtime.check_builtin_ops(content, "probe")


def test_model_without_mfcc_front_end_is_refused():
    import keras

    from kwsnb.tflite import export as exporting

    audio = keras.Input((16000,))
    model = keras.Model(audio, keras.layers.Dense(4)(audio), name="no_front_end")
    with pytest.raises(exporting.ExportError, match="no_front_end.*0 MFCC front-end layers"):
        exporting.export(model, "unused", np.zeros((4, 16000), np.float32))


def test_unknown_format_is_refused(untrained, clips):
    from kwsnb.tflite import export as exporting

    with pytest.raises(exporting.ExportError, match="unknown format.*tflite_int4"):
        exporting.export(untrained[0], "unused", clips, formats=["tflite_int4"])


def test_read_tflite_names_missing_and_corrupt_files(tmp_path, untrained):
    from kwsnb.tflite import export as exporting, runtime

    missing = tmp_path / "tflite_float" / "model.tflite"
    with pytest.raises(exporting.ExportError, match=f"{missing}.*not found"):
        runtime.read_tflite(missing)
    not_tflite = tmp_path / "text.tflite"
    not_tflite.write_text("definitely not a flatbuffer")
    with pytest.raises(exporting.ExportError, match=f"{not_tflite}.*not a TFLite model"):
        runtime.read_tflite(not_tflite)
    _, content = untrained
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(content[:len(content) // 3])
    with pytest.raises(exporting.ExportError, match=f"{truncated}.*corrupt"):
        runtime.read_tflite(truncated)
    whole = tmp_path / "whole.tflite"
    whole.write_bytes(content)
    assert runtime.read_tflite(whole) == content


# ---------------------------------------------------------------------------------------------
# Slow: a trained model, every format
# ---------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.real_data
def test_export_writes_every_format_with_metadata(exported, task):
    from kwsnb.tflite import export as exporting, runtime

    assert set(exported) == set(exporting.FORMATS)
    for name, path in exported.items():
        content = runtime.read_tflite(path)
        ops = runtime.check_builtin_ops(content, name)
        metadata = json.loads((path.parent / exporting.METADATA_FILE).read_text())
        assert metadata["format"] == name and metadata["labels"] == task.labels
        assert metadata["size_bytes"] == path.stat().st_size
        assert metadata["operators"] == ops
        if name == "tflite_stream_internal_float":
            assert {"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE"} <= set(ops)
    external = json.loads((exported["tflite_stream_external_int8"].parent /
                           exporting.METADATA_FILE).read_text())
    assert external["packet_input"] == "audio" and external["logits_output"] == "logits"
    assert external["audio_state"] == "mfcc_state"
    assert {s["input"] for s in external["states"]} == set(external["inputs"]) - {"audio"}
    features = json.loads((exported["tflite_features_int8"].parent /
                           exporting.METADATA_FILE).read_text())
    assert features["input_quantization"]["scale"] > 0
    assert len(features["input_quantization"]["coefficient_scale"]) == 20
    assert len(features["input_quantization"]["coefficient_mean"]) == 20
    assert features["feature_flags"]["dct_num_features"] == 20
    # Quantization shrinks the body; the float front end's constants (window, compact mel
    # filterbank, DCT) stay in every raw-audio model, under 18 KB here (20 coefficients).
    sizes = {name: path.stat().st_size for name, path in exported.items()}
    int8 = json.loads((exported["tflite_int8"].parent / exporting.METADATA_FILE).read_text())
    assert 10_000 < int8["front_end_bytes"] < 18_000 and features["front_end_bytes"] == 0
    assert sizes["tflite_int8"] < sizes["tflite_float"]
    assert sizes["tflite_features_int8"] < sizes["tflite_int8"] - int8["front_end_bytes"]
    # Tensor names are stripped (the front end's shortened to mfcc/<index>) and int8 weights
    # have one scale per tensor: the features-in model is little more than its int8 weights.
    from ai_edge_litert import schema_py_generated as schema

    for name, path in exported.items():
        model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
        names = [(t.name or b"").decode() for t in model.subgraphs[0].tensors]
        assert all(n == "" or n.startswith("mfcc/") for n in names), name
        assert any(n.startswith("mfcc/") for n in names) == (name != "tflite_features_int8")
    body = schema.ModelT.InitFromPackedBuf(exported["tflite_features_int8"].read_bytes(), 0)
    weight_bytes = sum(len(b.data) for b in body.buffers if b.data is not None)
    assert sizes["tflite_features_int8"] < weight_bytes + 12_000
    assert all(t.quantization is None or t.quantization.scale is None
               or len(t.quantization.scale) == 1 for t in body.subgraphs[0].tensors)


@pytest.mark.slow
@pytest.mark.real_data
def test_quantized_formats_keep_the_float_accuracy(exported, task):
    from kwsnb import streaming
    from kwsnb.tflite import runtime

    front_end, _ = streaming.split_front_end(task.model)
    features = front_end.predict(task.test_audio, batch_size=200, verbose=0)
    keras_logits = task.model.predict(task.test_audio, batch_size=200, verbose=0)

    def accuracy(name):
        content = runtime.read_tflite(exported[name])
        inputs = features if name == "tflite_features_int8" else task.test_audio
        return np.mean(_run(content, inputs).argmax(-1) == task.test_labels)

    float_logits = _run(runtime.read_tflite(exported["tflite_float"]), task.test_audio)
    np.testing.assert_allclose(float_logits, keras_logits, rtol=1e-4,
                               atol=1e-4 * np.abs(keras_logits).max())
    float_accuracy = np.mean(float_logits.argmax(-1) == task.test_labels)
    assert float_accuracy > 0.8, "the trained test model should be well above chance (25%)"
    for name in ("tflite_dynamic", "tflite_int8", "tflite_features_int8"):
        assert accuracy(name) >= float_accuracy - QUANTIZED_MARGIN, name


@pytest.mark.slow
@pytest.mark.real_data
def test_stream_formats_match_the_non_stream_model(exported, task):
    from kwsnb.tflite import export as exporting, runtime

    def model(name):
        return runtime.TFLiteModel(runtime.read_tflite(exported[name]), name)

    def metadata(name):
        return json.loads((exported[name].parent / exporting.METADATA_FILE).read_text())

    audio = task.test_audio[:40]
    reference = _run(model("tflite_float").content, audio)
    scale = np.abs(reference).max()
    def stream(name):
        return runtime.stream_runner(model(name), metadata(name)).run_clips(audio)

    external = stream("tflite_stream_external_float")
    internal = stream("tflite_stream_internal_float")
    # Valid padding: 50 packets from zero states give exactly the non-stream frames' result.
    np.testing.assert_allclose(external, reference, atol=1e-4 * scale)
    np.testing.assert_allclose(internal, reference, atol=1e-4 * scale)
    int8 = stream("tflite_stream_external_int8")
    assert np.mean(int8.argmax(-1) == reference.argmax(-1)) >= 0.9
    # One quantization for every int8 format (kwsnb.tflite.quantize): the int8 stream computes the
    # int8 non-stream model's integers.
    np.testing.assert_array_equal(int8, _run(model("tflite_int8").content, audio))


@pytest.mark.slow
@pytest.mark.real_data
def test_export_refuses_an_int8_stream_that_does_not_share_the_quantization(exported, task):
    """The check every export runs (``verify_int8_stream``) catches a stream calibrated on its
    own, as a TensorFlow release matching no tensor by name would leave it."""
    from kwsnb import streaming
    from kwsnb.tflite import export as exporting, runtime
    from kwsnb.tflite.runtime import ExportError

    non_stream = runtime.read_tflite(exported["tflite_int8"])
    shared = runtime.read_tflite(exported["tflite_stream_external_int8"])
    metadata = json.loads((exported["tflite_stream_external_int8"].parent
                           / exporting.METADATA_FILE).read_text())
    audio = task.test_audio[:exporting.VERIFY_CLIPS]
    exporting.verify_int8_stream(non_stream, shared, metadata, audio)  # what export wrote
    own = exporting.convert_stream_external_int8(streaming.to_stream_external(task.model),
                                                 task.train_audio[:300])
    with pytest.raises(ExportError, match=r"computes other logits than tflite_int8 on \d+ of 8 "
                                          r"clips.*this is \d+\.\d+"):
        exporting.verify_int8_stream(non_stream, own, metadata, audio)
