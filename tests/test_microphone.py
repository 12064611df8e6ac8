"""The microphone's Python side without a browser: what the page sends (float32 buffers at the
page's rate) becomes 16 kHz audio, and live detection over chunks as they arrive equals
``kwsnb.evaluate.detect.detect`` over the whole recording (the browser test, tests/test_browser.py,
drives the real page)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kwsnb.evaluate import detect
from kwsnb.notebooks import microphone
from kwsnb.data.long_audio import LongRecording

MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "tc_resnet"
STREAM_MODEL = MODEL_DIR / "tflite_stream_external_int8"
SPEAKER = "422d3197_nohash_0"  # as in test_browser.py: a "yes" and a "no" heard clearly


def _labels() -> list[str]:
    return json.loads((MODEL_DIR / "flags.json").read_text())["labels"]


def test_live_detection_over_chunks_equals_detect_over_the_file(real_test_dir):
    from kwsnb.data import load_clip

    rng = np.random.default_rng(0)
    quiet = lambda seconds: rng.normal(0, 1e-3, int(seconds * 16000)).astype(np.float32)  # noqa: E731
    yes, no = (load_clip(real_test_dir / word / f"{SPEAKER}.flac") for word in ("yes", "no"))
    audio = np.concatenate([quiet(0.5), yes, quiet(1.0), no, quiet(1.0)])
    point = microphone.operating_point(MODEL_DIR)
    live = microphone.LiveDetector(STREAM_MODEL, _labels(), smoothing_ms=point["smoothing_ms"],
                                   threshold=point["threshold"])
    # The page's chunks are 2048 samples; odd sizes check that packets span chunks.
    for start in range(0, len(audio), 1111):
        live.feed(audio[start:start + 1111])
    recording = LongRecording(audio, 16000, [(0.5, 1.5, "yes"), (2.5, 3.5, "no")])
    whole = detect.detect(STREAM_MODEL, recording, _labels(), smoothing_ms=point["smoothing_ms"],
                          threshold=point["threshold"])
    assert [label for _, label, _ in live.detections()] == ["yes", "no"]
    for (time_s, label, score), expected in zip(live.detections(), whole.detections):
        # the same packet: its time as a sum of 20 ms packets and as a product may differ in
        # the last bit
        assert label == expected[1] and time_s == pytest.approx(expected[0], abs=1e-9)
        assert score == pytest.approx(expected[2], abs=1e-5)
    np.testing.assert_allclose(live.smoothed(), whole.posteriors, atol=1e-5)
    chart = live.chart(window_s=2.0)
    assert chart["labels"] == [n for n in _labels() if not n.startswith("_")]
    assert chart["times"][0] > chart["now"] - 2.0 and len(chart["probs"][0]) == len(chart["labels"])
    assert [d[1] for d in chart["detections"]] == ["yes", "no"]
    live.reset()
    assert live.detections() == [] and len(live.times_s) == 0


def test_operating_point_reads_detection_json_else_detects_defaults(tmp_path):
    assert microphone.operating_point(tmp_path) == {
        "smoothing_ms": 200.0, "threshold": 0.6, "source": "kwsnb.evaluate.detect defaults"}
    (tmp_path / "detection.json").write_text(json.dumps(
        {"operating_point": {"smoothing_ms": 300, "threshold": 0.75}}))
    point = microphone.operating_point(tmp_path)
    assert (point["smoothing_ms"], point["threshold"]) == (300.0, 0.75)


def test_recorder_turns_the_pages_buffers_into_16khz_audio():
    pytest.importorskip("anywidget")
    recorder = microphone.Recorder(seconds=1.5)
    got = []
    recorder.on_recording(got.append)
    tone = np.sin(2 * np.pi * 440 * np.arange(48000) / 48000).astype(np.float32)  # 1 s, 48 kHz
    recorder._on_message(recorder, {"kind": "recording", "sample_rate": 48000},
                         [memoryview(tone.tobytes())])
    assert recorder.recording.shape == (16000,) and got[0] is recorder.recording
    spectrum = np.abs(np.fft.rfft(recorder.recording))
    assert int(np.argmax(spectrum)) == 440  # 1 Hz bins: the tone survived resampling
    assert recorder.status == "recorded 1.0 s"
    with pytest.raises(ValueError, match="between 1 and 3"):
        microphone.Recorder(seconds=5)
    with pytest.raises(ValueError, match="'record' or 'live'"):
        microphone.Recorder(mode="stream")


def test_live_audio_at_48khz_is_resampled_without_seams():
    """Firefox keeps the microphone's rate: chunks are resampled as one stream, so a tone cut
    into the page's chunks comes out as the same tone, with no clicks at the chunk edges."""
    pytest.importorskip("anywidget")
    recorder = microphone.Recorder(mode="live")
    got = []
    recorder.on_audio(got.append)
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(48000) / 48000)).astype(np.float32)
    recorder._on_message(recorder, {"kind": "start", "sample_rate": 48000}, [])
    for start in range(0, len(tone), 2048):
        recorder._on_message(recorder, {"kind": "audio", "sample_rate": 48000},
                             [memoryview(tone[start:start + 2048].tobytes())])
    audio = np.concatenate(got)
    assert 16000 - 800 < len(audio) <= 16000  # the resampler holds back some ms
    # The same as resampling the whole second at once: no seam where chunks meet.
    whole = microphone._resample(tone, 48000)
    np.testing.assert_allclose(audio, whole[:len(audio)], atol=1e-3)
    spectrum = np.abs(np.fft.rfft(audio[:16000 - 800], n=16000))
    assert int(np.argmax(spectrum)) == 440
