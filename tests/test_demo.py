"""kwsnb.demo, the README's main job, end to end on the synthetic set with a short schedule."""
from __future__ import annotations

import json

import pytest

from kwsnb import demo, evaluate


@pytest.mark.slow
def test_demo_trains_quantizes_evaluates_and_streams(synthetic_dir, tmp_path, capsys):
    code = demo.main(["--data_dir", str(synthetic_dir), "--out", str(tmp_path),
                      "--steps", "60,60", "--batch_size", "50"])
    out = capsys.readouterr().out
    assert code == 0
    run = tmp_path / demo.DEFAULT_MODEL
    report = json.loads((run / "report.json").read_text())
    assert set(report["formats"]) == set(evaluate.ALL_FORMATS)
    assert all("error" not in entry for entry in report["formats"].values())
    detection = json.loads((run / "detection.json").read_text())
    events = detection["hits"] + detection["misses"]
    assert events > 0 and detection["miss_rate"] == pytest.approx(detection["misses"] / events)
    assert detection["false_accepts_per_hour"] >= 0
    assert (run / "detection_timeline.png").stat().st_size > 10_000
    # The detector's settings were chosen on the validation recording, then applied.
    point = detection["operating_point"]
    assert detection["smoothing_ms"] == point["smoothing_ms"]
    assert detection["threshold"] == point["threshold"]
    assert point["max_false_accepts_per_hour"] == demo.MAX_FALSE_ACCEPTS_PER_HOUR
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
