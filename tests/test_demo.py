"""kwsnb.demo, the README's main job, end to end on the synthetic set with a short schedule."""
from __future__ import annotations

import json

import pytest

from kwsnb import demo, evaluate
from kwsnb.evaluate import operating_point


# Issue 23's target for the demo, which its recipe meets: on the 20-minute held-out recording
# 7.4% of the keywords missed at 15 false accepts per hour (5 in 20 minutes); at the committed
# models' learning rates 27% were missed, before the streaming recipe 68%. A detector that never
# fires, one as weak as before or one that fires at will (hundreds per hour) fails these.
MAX_DEMO_MISS_RATE = 0.15
MAX_DEMO_FALSE_ACCEPTS_PER_HOUR = 20.0


@pytest.fixture(scope="session")
def demo_data_dir():
    """The demo's own data set (data_setup.synthetic's defaults), made once and cached."""
    from conftest import TEST_CACHE
    from data_setup import synthetic

    out = TEST_CACHE / "demo-synthetic-v1"
    if not (out / ".complete").exists():
        synthetic.synthesize(out, progress=False)
    return out


@pytest.mark.slow
def test_demo_trains_quantizes_evaluates_and_streams(demo_data_dir, tmp_path, capsys):
    """The README's main command as a user runs it (its data, its recipe), end to end."""
    code = demo.main(["--data_dir", str(demo_data_dir), "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    run = tmp_path / demo.DEFAULT_MODEL
    report = json.loads((run / "report.json").read_text())
    assert set(report["formats"]) == set(evaluate.ALL_FORMATS)
    assert all("error" not in entry for entry in report["formats"].values())
    detection = json.loads((run / "detection.json").read_text())
    events = detection["hits"] + detection["misses"]
    assert events > 300 and detection["miss_rate"] == pytest.approx(detection["misses"] / events)
    assert detection["miss_rate"] <= MAX_DEMO_MISS_RATE, detection
    assert detection["false_accepts_per_hour"] <= MAX_DEMO_FALSE_ACCEPTS_PER_HOUR, detection
    assert (run / "detection_timeline.png").stat().st_size > 10_000
    # The detector's settings were chosen on the validation recording, then applied.
    point = detection["operating_point"]
    assert detection["smoothing_ms"] == point["smoothing_ms"]
    assert detection["threshold"] == point["threshold"]
    assert point["max_false_accepts_per_hour"] == demo.MAX_FALSE_ACCEPTS_PER_HOUR
    assert point["recording"]["duration_s"] == demo.VALIDATION_RECORDING_SECONDS
    # ... and stored with the model, for the notebooks and the microphone detector
    assert operating_point.stored(run)["threshold"] == point["threshold"]
    assert (run / "detection_tradeoff.png").stat().st_size > 10_000
    # The summary a user reads: the format table and the streaming result.
    assert "tflite_stream_external_int8" in out and "per hour" in out


def test_demo_refuses_an_unknown_model(capsys):
    with pytest.raises(SystemExit):
        demo.main(["--model", "resnet50"])
    assert "choose one of" in capsys.readouterr().err


def test_demo_names_a_missing_data_folder(tmp_path, capsys):
    code = demo.main(["--data_dir", str(tmp_path / "nothing"), "--out", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert "nothing" in err and "data_setup" in err
