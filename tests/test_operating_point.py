"""kwsnb.evaluate.operating_point: the detector's smoothing and threshold stored with the model,
and refused when the weights changed since (no retrained model runs at its predecessor's
threshold). Tuning itself runs in the notebook and demo tests (it needs a trained model)."""
import json

import pytest

from kwsnb.evaluate import operating_point
from kwsnb.notebooks import microphone

POINT = {"smoothing_ms": 100.0, "threshold": 0.995, "miss_rate": 0.2,
         "false_accepts_per_hour": 6.0, "met": True, "sweep": [{"threshold": 0.5}]}


@pytest.fixture
def train_dir(tmp_path):
    (tmp_path / "best_weights.weights.h5").write_bytes(b"weights, first training")
    return tmp_path


def test_store_then_stored(train_dir):
    returned = operating_point.store(train_dir, POINT, hits=40,
                                     format="tflite_stream_external_int8")
    path = train_dir / "detection.json"
    content = json.loads(path.read_text())
    assert content["hits"] == 40 and "sweep" not in content["operating_point"]
    point = operating_point.stored(train_dir)
    assert (point["smoothing_ms"], point["threshold"]) == (100.0, 0.995)
    assert point["source"] == str(path)
    assert returned == point  # what store returns is what stored reads back
    # the live detector reads the same point
    assert microphone.operating_point(train_dir) == {"smoothing_ms": 100.0, "threshold": 0.995,
                                                      "source": str(path)}


def test_a_point_chosen_for_other_weights_is_refused(train_dir):
    operating_point.store(train_dir, POINT)
    (train_dir / "best_weights.weights.h5").write_bytes(b"weights, trained again")
    with pytest.warns(UserWarning, match="chosen for other weights"):
        assert operating_point.stored(train_dir) is None
    with pytest.warns(UserWarning, match="chosen for other weights"):
        assert microphone.operating_point(train_dir)["source"] == \
            "kwsnb.evaluate.detect defaults"


def test_missing_or_broken_files(train_dir):
    assert operating_point.stored(train_dir) is None
    (train_dir / "detection.json").write_text("{not json")
    with pytest.warns(UserWarning, match="detection.json is not JSON"):
        assert operating_point.stored(train_dir) is None
    (train_dir / "detection.json").write_text(json.dumps({"hits": 3}))
    assert operating_point.stored(train_dir) is None


def test_tuning_without_validation_clips_is_a_clear_error(train_dir):
    import numpy as np

    with pytest.raises(ValueError, match="no validation clips"):
        operating_point.tune(train_dir / "tflite_stream_external_int8",
                             np.zeros((0, 16000), np.float32), np.zeros(0, np.int32),
                             ["_silence_", "_unknown_", "yes"])
