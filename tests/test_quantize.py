"""kwsnb.tflite.quantize: one int8 quantization for every format (GitHub issue 11).

On real audio, with the committed SC-lite-10 models (one per family: svdf, tc_resnet,
svdf_resnet): exported through ``kwsnb.tflite.export.export`` (one calibration of the non-stream model,
its ranges forced into the external-state streaming graph), the int8 stream predicts what the
int8 non-stream model predicts on primed streams (``agreement_primed``), and int8 accuracy stays
within half a point of the float model's.

Clips: accuracy on the whole SC-lite-10 test set (1,809 clips, non-stream, fast); stream
agreement on a reproducible random 400 of them (``STREAM_CLIPS``; streaming is the slow part).
The models are bit-exact (identical int8 logits on every clip measured, every clip for each
of the three), so 400 clips are plenty: one disagreement in 400 would already be a regression.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import REPO_ROOT
from test_export import WORDS, clips, small_model  # noqa: F401 (clips: a fixture)

# One per family, and mobilenet_v2: its Dense outputs and residual adds are named differently
# in the stream graph (matched through the reshapes ahead, and by layer).
ARCHITECTURES = ("svdf", "tc_resnet", "svdf_resnet", "mobilenet_v2")
TEST_EXCLUDE = ("on", "off")  # SC-lite-10: the words the models were not trained on
STREAM_CLIPS = 400
MAX_ACCURACY_DROP = 0.005  # int8 accuracy within half a point of float


def _trained(arch: str):
    from kwsnb import train

    train_dir = REPO_ROOT / "models" / arch
    if not (train_dir / train.BEST_WEIGHTS).is_file():
        pytest.skip(f"{train_dir} has no trained weights")
    return train.load_trained_model(train_dir)


@pytest.fixture(scope="module")
def labels():
    return list(_trained("svdf")[1]["labels"])


@pytest.fixture(scope="module")
def test_set(real_test_dir, labels):
    from kwsnb import data

    return data.read_test_folder(real_test_dir, labels, TEST_EXCLUDE, progress=False)


@pytest.fixture(scope="module")
def representative(real_train_dir, labels):
    """The training clips kwsnb.evaluate calibrates on (300, unaugmented, seeded)."""
    from kwsnb import data
    from kwsnb.tflite import convert

    flags = dict(_trained("svdf")[1], data_dir=str(real_train_dir))
    dataset = data.SpeechCommands.from_flags(flags, progress=False)
    assert list(dataset.labels) == labels
    return convert.representative_audio(dataset)


@pytest.mark.real_data
@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_int8_stream_agrees_with_int8_non_stream(arch, test_set, representative, tmp_path):
    from kwsnb import evaluate
    from kwsnb.tflite import export

    model, flags = _trained(arch)
    audio, targets = test_set
    formats = ["tflite_int8", "tflite_stream_external_int8"]
    paths = export.export(model, tmp_path, representative, flags["labels"], formats=formats)
    results = evaluate.evaluate_formats(model, audio, targets, paths, ["keras", *formats],
                                        stream_clips=STREAM_CLIPS, latency_runs=0)
    stream = results["tflite_stream_external_int8"]
    assert stream["clips"] == STREAM_CLIPS and stream["agreement_with"] == "tflite_int8"
    # Primed, the int8 stream sees the non-stream frames: the export promises the same logits.
    assert stream["agreement_primed"] == 1.0, (arch, stream)
    float_accuracy = results["keras"]["accuracy"]
    assert results["tflite_int8"]["accuracy"] >= float_accuracy - MAX_ACCURACY_DROP, (
        arch, float_accuracy, results["tflite_int8"])

    # No body op of the stream model was left float (the audio ring buffer's new state is
    # the front end's: float by design).
    content = paths["tflite_stream_external_int8"].read_bytes()
    assert _float_body_ops(content) == [], (arch, _float_body_ops(content))


def _float_body_ops(content: bytes) -> list[str]:
    from kwsnb.tflite import convert, float_islands

    return [op for op in float_islands.float_body_ops(content, convert.front_end_tensor_names(content))
            # The new audio state sliced off for a graph output (named after the call before
            # names are stripped, nameless after): float I/O by design.
            if op not in ("STRIDED_SLICE:", ) and not op.startswith("STRIDED_SLICE:StatefulPartitionedCall")]


def test_int8_stream_is_bit_exact_on_a_small_tc_resnet(clips, tmp_path):
    """Fast, no training: an untrained small tc_resnet (strided 1x1 shortcuts, which the
    quantizer leaves float in stream graphs unless repaired) gives the same int8 logits
    streamed (primed) as non-stream, and its three int8 formats share one input scale."""
    from kwsnb.tflite import export, runtime

    model = small_model()
    formats = ["tflite_int8", "tflite_features_int8", "tflite_stream_external_int8"]
    paths = export.export(model, tmp_path, clips, list(WORDS), formats=formats)
    non_stream = runtime.predict_non_stream(
        runtime.TFLiteModel(paths["tflite_int8"].read_bytes()), clips)
    metadata = json.loads((paths["tflite_stream_external_int8"].parent / "metadata.json")
                          .read_text())
    stream_content = paths["tflite_stream_external_int8"].read_bytes()
    stream = runtime.stream_runner(runtime.TFLiteModel(stream_content), metadata).run_clips(
        clips, prime=True)
    np.testing.assert_array_equal(stream, non_stream)
    assert _float_body_ops(stream_content) == []

    def body_input_scale(content):
        model_ = runtime.tflite_schema().ModelT.InitFromPackedBuf(content, 0)
        graph = model_.subgraphs[0]
        quantize_ops = [op for op in graph.operators
                        if runtime.opcode_names()[model_.operatorCodes[op.opcodeIndex]
                                                  .builtinCode] == "QUANTIZE"]
        return {float(graph.tensors[op.outputs[0]].quantization.scale[0])
                for op in quantize_ops}

    features_scale = runtime.describe_io(paths["tflite_features_int8"].read_bytes())
    (features,) = features_scale["inputs"].values()
    assert features["scale"] in body_input_scale(paths["tflite_int8"].read_bytes())
