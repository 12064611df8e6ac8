"""kwsnb.streaming long-audio detection: recordings with known word positions, detections,
false accepts per hour and miss rate.

Fast tests use the offline TTS set (``synthetic_dir``): recordings made of its clips and noise,
the detector and matcher on constructed posteriors with known answers, and the small tc_resnet
of tests/test_export.py trained in seconds on the set's MFCCs (the front end has no weights, so
the body is fitted on precomputed features). Slow tests add TFLite conversion and real speech
from ../shared/data.
"""
from __future__ import annotations

import functools
import json
import shutil

import numpy as np
import pytest

from kwsnb.data import speech
from kwsnb.models import MODELS
from test_export import SMALL_FLAGS, keyword_task

LABELS = ("_silence_", "_unknown_", "yes", "no", "up", "down")
UNKNOWN_WORDS = ("bed", "cat")
SAMPLE_RATE = 16000
PACKET_S = 0.02


# ---------------------------------------------------------------------------------------------
# Data and a trained model
# ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def synthetic_clips(folder: str) -> tuple[np.ndarray, np.ndarray]:
    """Every clip of the four keywords and six other words (labelled _unknown_) of the TTS set."""
    from pathlib import Path

    from kwsnb import data

    words = data.scan_folder(folder).words
    paths, labels = [], []
    for word in LABELS[2:] + UNKNOWN_WORDS:
        label = LABELS.index(word) if word in LABELS else LABELS.index("_unknown_")
        paths += words[word]
        labels += [label] * len(words[word])
    clips, ok = data.load_clips(paths, Path(folder), progress=False)
    return clips[ok].astype(np.float32) / 32768.0, np.array(labels, np.int32)[ok]


@functools.lru_cache(maxsize=1)
def trained_model(folder: str):
    """SMALL_FLAGS tc_resnet with the six LABELS, trained in seconds on what a stream sees: 1 s
    windows of other long recordings (their own seeds, noise levels 0.02-0.1) ending 0.05-0.35 s
    after each word, and windows between words as _silence_."""
    import keras

    from kwsnb import models, streaming
    from kwsnb.data import long_audio

    audio, labels = synthetic_clips(folder)
    windows, targets = [], []
    for seed, noise_level in ((10, 0.02), (11, 0.05), (12, 0.1)):
        recording = long_audio.make_long_recording(audio, labels, LABELS, noise=folder,
                                                  duration_s=120, noise_level=noise_level,
                                                  seed=seed)
        for start, end, label in recording.events:
            for delay in (0.05, 0.2, 0.35):
                stop = int((end + delay) * SAMPLE_RATE)
                if SAMPLE_RATE <= stop <= len(recording.audio):
                    windows.append(recording.audio[stop - SAMPLE_RATE:stop])
                    targets.append(LABELS.index(label))
        between = _outside(recording.events, len(recording.audio), speech.WORD_MARGIN_S)
        for stop in range(SAMPLE_RATE, len(recording.audio), SAMPLE_RATE // 4):
            if between[stop - SAMPLE_RATE:stop].all():
                windows.append(recording.audio[stop - SAMPLE_RATE:stop])
                targets.append(LABELS.index("_silence_"))

    keras.utils.set_random_seed(0)
    model = models.build("tc_resnet", **{**SMALL_FLAGS, "label_count": len(LABELS)})
    front_end, body = streaming.split_front_end(model)
    features = front_end.predict(np.stack(windows), batch_size=256, verbose=0)
    body.compile(keras.optimizers.Adam(3e-3),
                 keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    body.fit(features, np.array(targets), epochs=20, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="module")
def clips(synthetic_dir):
    return synthetic_clips(str(synthetic_dir))


@pytest.fixture(scope="module")
def untrained():
    """The SMALL_FLAGS tc_resnet with the six LABELS, seeded weights: for paths and errors."""
    import keras

    from kwsnb import models

    keras.utils.set_random_seed(0)
    return models.build("tc_resnet", **{**SMALL_FLAGS, "label_count": len(LABELS)})


@pytest.fixture(scope="module")
def short_recording(clips, synthetic_dir):
    from kwsnb.data import long_audio

    return long_audio.make_long_recording(*clips, LABELS, noise=synthetic_dir, duration_s=12,
                                         seed=7)


@pytest.fixture(scope="module")
def model(synthetic_dir):
    return trained_model(str(synthetic_dir))


@pytest.fixture(scope="module")
def easy_recording(clips, synthetic_dir):
    """One minute of the model's own training clips (other order, gaps and noise than its
    training recordings) over quiet noise (26 dB SNR)."""
    from kwsnb.data import long_audio

    return long_audio.make_long_recording(*clips, LABELS, noise=synthetic_dir, duration_s=60,
                                         noise_level=0.05, seed=1)


@pytest.fixture(scope="module")
def easy_result(model, easy_recording):
    from kwsnb.evaluate import detect

    return detect.detect(model, easy_recording, LABELS)


def _outside(events, samples: int, margin_s: float) -> np.ndarray:
    """Mask of the samples farther than ``margin_s`` from every event."""
    mask = np.ones(samples, bool)
    for start, end, _ in events:
        mask[max(0, int((start - margin_s) * SAMPLE_RATE)):int((end + margin_s) * SAMPLE_RATE)] = 0
    return mask


# ---------------------------------------------------------------------------------------------
# Recordings
# ---------------------------------------------------------------------------------------------

def test_words_sit_where_the_events_say(clips):
    from kwsnb.data import long_audio

    recording = long_audio.make_long_recording(*clips, LABELS, duration_s=60, gap_s=(0.5, 1.5),
                                              seed=3)
    audio, events = recording.audio, recording.events
    assert recording.sample_rate == SAMPLE_RATE and len(audio) == 60 * SAMPLE_RATE
    assert 25 <= len(events) <= 60, "1-1.5 s per word plus 0.5-1.5 s gaps"
    assert {label for *_, label in events} == set(LABELS[1:])
    starts = np.array([start for start, _, _ in events])
    ends = np.array([end for _, end, _ in events])
    assert np.all(ends > starts) and ends[-1] <= 60
    gaps = starts[1:] - ends[:-1]
    assert gaps.min() >= 0.5 - 1e-6 and gaps.max() <= 1.5 + 1e-6
    # Quiet: nothing but the words' pieces (speech extent + margin) is in the recording.
    margin = speech.WORD_MARGIN_S
    assert not np.any(audio[_outside(events, len(audio), margin + 1e-3)])
    # Each event is the speech: its loudest 32 ms frame is speech-loud, and nothing in the margins
    # around it comes within SPEECH_TOP_DB of that (the energy trim that defined it).
    frame = 512
    for start, end, label in events:
        first, last = int(start * SAMPLE_RATE), int(end * SAMPLE_RATE)
        inside = np.lib.stride_tricks.sliding_window_view(audio[first:last], frame)[::128]
        peak = np.mean(inside ** 2, axis=1).max()
        assert peak > 1e-4, f"no speech in the event {start:.2f}-{end:.2f} ({label})"
        for lo, hi in ((first - int(margin * SAMPLE_RATE), first - frame // 2),
                       (last + frame // 2, last + int(margin * SAMPLE_RATE))):
            around = audio[max(0, lo):max(0, hi)]
            if len(around) >= frame:
                power = np.mean(np.lib.stride_tricks.sliding_window_view(around, frame) ** 2, 1)
                assert power.max() < peak * 10 ** (-speech.SPEECH_TOP_DB / 10)
    # Seeded.
    again = long_audio.make_long_recording(*clips, LABELS, duration_s=60, gap_s=(0.5, 1.5), seed=3)
    other = long_audio.make_long_recording(*clips, LABELS, duration_s=60, gap_s=(0.5, 1.5), seed=4)
    np.testing.assert_array_equal(again.audio, audio)
    assert again.events == events and other.events != events


def test_noise_fills_the_gaps_at_the_requested_level(clips, synthetic_dir):
    from kwsnb import data
    from kwsnb.data import long_audio

    options = dict(duration_s=30, seed=5)
    quiet = long_audio.make_long_recording(*clips, LABELS, **options)
    noisy = long_audio.make_long_recording(*clips, LABELS, noise=synthetic_dir, noise_level=0.1,
                                          **options)
    assert noisy.events == quiet.events  # the noise draws come after the words'
    noise = noisy.audio - quiet.audio
    in_words = ~_outside(quiet.events, len(quiet.audio), 0.0)
    speech_rms = np.sqrt(np.mean(quiet.audio[in_words] ** 2))
    np.testing.assert_allclose(np.sqrt(np.mean(noise ** 2)), 0.1 * speech_rms, rtol=1e-3)
    assert np.mean(noise == 0) < 1e-3, "noise everywhere, no holes at the joins"
    # The noise folder can be the data folder, its _background_noise_ folder, or arrays.
    folder = synthetic_dir / data.BACKGROUND_NOISE_DIR_NAME
    same = long_audio.make_long_recording(*clips, LABELS, noise=folder, noise_level=0.1, **options)
    np.testing.assert_array_equal(same.audio, noisy.audio)
    hum = data.load_clip(folder / "hum.wav", clip_samples=None)
    for arrays in (hum, [hum, hum[::-1]]):
        mixed = long_audio.make_long_recording(*clips, LABELS, noise=arrays, noise_level=0.3,
                                              **options)
        np.testing.assert_allclose(np.sqrt(np.mean((mixed.audio - quiet.audio) ** 2)),
                                   0.3 * speech_rms, rtol=1e-3)


def test_save_writes_wav_and_events_csv(clips, tmp_path):
    import soundfile

    from kwsnb.data import long_audio

    recording = long_audio.make_long_recording(*clips, LABELS, duration_s=20, seed=2)
    recording.save(tmp_path / "long")
    audio, rate = soundfile.read(tmp_path / "long.wav", dtype="float32")
    assert rate == SAMPLE_RATE
    np.testing.assert_allclose(audio, recording.audio, atol=1 / 32768)
    lines = (tmp_path / "long.csv").read_text().splitlines()
    assert lines[0] == "start_s,end_s,label" and len(lines) == len(recording.events) + 1
    loaded = long_audio.LongRecording.load(tmp_path / "long.wav")
    assert [label for *_, label in loaded.events] == [label for *_, label in recording.events]
    np.testing.assert_allclose([e[:2] for e in loaded.events], [e[:2] for e in recording.events],
                               atol=1e-4)


def test_bad_recording_inputs_are_explained(clips, tmp_path):
    from kwsnb.data import long_audio

    audio, labels = clips
    make = long_audio.make_long_recording
    with pytest.raises(ValueError, match=r"clips \[clips, samples\]"):
        make(audio[0], labels[:1], LABELS)
    with pytest.raises(ValueError, match="clips but .* labels"):
        make(audio, labels[:-1], LABELS)
    with pytest.raises(ValueError, match="integer indices into label_names"):
        make(audio, labels + 10, LABELS)
    with pytest.raises(ValueError, match="no word clips.*_silence_"):
        make(audio[:3], np.zeros(3, int), LABELS)
    with pytest.raises(ValueError, match="gap_s"):
        make(audio, labels, LABELS, gap_s=(3.0, 1.0))
    with pytest.raises(ValueError, match="too short for one word"):
        make(audio, labels, LABELS, duration_s=0.5)
    with pytest.raises(FileNotFoundError, match="noise folder"):
        make(audio, labels, LABELS, noise=tmp_path / "missing", duration_s=5)
    with pytest.raises(ValueError, match="all zeros"):
        make(audio, labels, LABELS, noise=np.zeros(SAMPLE_RATE), duration_s=5)
    with pytest.raises(FileNotFoundError, match="events file"):
        (tmp_path / "lonely.wav").write_bytes(b"")
        long_audio.LongRecording.load(tmp_path / "lonely.wav")


# ---------------------------------------------------------------------------------------------
# Detections and matching on constructed posteriors (known answers)
# ---------------------------------------------------------------------------------------------

def _posteriors(duration_s: float, pulses, labels=LABELS) -> tuple[np.ndarray, np.ndarray]:
    """(times_s, posteriors): silence everywhere but ``pulses`` of (start_s, end_s, label)
    where that label has posterior 1."""
    times = np.arange(1, int(round(duration_s / PACKET_S)) + 1) * PACKET_S
    posteriors = np.zeros((len(times), len(labels)), np.float32)
    posteriors[:, 0] = 1.0
    for start, end, label in pulses:
        rows = (times >= start - 1e-9) & (times < end - 1e-9)
        posteriors[rows] = 0.0
        posteriors[rows, labels.index(label)] = 1.0
    return times, posteriors


def test_matcher_counts_hits_misses_and_false_accepts():
    from kwsnb.evaluate import detect

    events = [(1.0, 1.5, "yes"), (4.0, 4.6, "no"), (8.0, 8.4, "yes"), (12.0, 12.5, "_unknown_"),
              (15.0, 15.5, "up")]
    detections = [1.3, "yes"], [1.9, "yes"], [4.9, "no"], [7.9, "yes"], [12.2, "yes"], [16.1, "up"]
    expected_hits = [True,   # inside
                     False,  # within the tolerance of an event already matched
                     True,   # after the end, within the 0.5 s tolerance
                     False,  # before the start
                     False,  # over an _unknown_ word
                     False]  # past end + tolerance
    # One-packet pulses at the detection times: threshold 0.5 without smoothing or suppression
    # detects exactly there.
    times, posteriors = _posteriors(1800, [(t, t + PACKET_S, label) for t, label in detections])
    result = detect.score_posteriors(times, posteriors, LABELS, events, 1800.0, threshold=0.5,
                                        suppression_ms=0.0)
    assert [(round(t, 2), label) for t, label, _ in result.detections] == \
        [(t, label) for t, label in detections]
    assert result.detection_hits == expected_hits
    assert result.event_hits == [True, True, False, None, False]
    assert (result.hits, result.misses, result.false_accepts) == (2, 2, 4)
    assert result.false_accepts_per_hour == pytest.approx(8.0)  # 4 in half an hour
    assert result.miss_rate == pytest.approx(0.5)  # the _unknown_ word is not a keyword event
    summary = result.summary()
    assert json.loads(json.dumps(summary)) == summary
    assert summary["keyword_events"] == 4 and summary["other_events"] == 1
    # A wider tolerance turns the late "up" into a hit.
    wider = detect.rescore(result, tolerance_s=0.7)
    assert (wider.hits, wider.misses, wider.false_accepts) == (3, 1, 3)


def test_smoothing_averages_the_last_packets():
    from kwsnb.evaluate import detect

    step = np.zeros((30, 2), np.float32)
    step[10:, 1] = 1.0
    smoothed = detect.smooth_posteriors(step, smoothing_ms=200)
    np.testing.assert_allclose(smoothed[10:20, 1], np.arange(1, 11) / 10, rtol=1e-6)
    np.testing.assert_allclose(smoothed[20:, 1], 1.0)
    np.testing.assert_array_equal(detect.smooth_posteriors(step, 0), step)
    # One loud packet: averaged over 10 packets it stays far below the threshold.
    times, spike = _posteriors(5, [(2.0, 2.0 + PACKET_S, "yes")])
    assert detect.find_detections(times, spike, LABELS, threshold=0.6)
    assert not detect.find_detections(times, detect.smooth_posteriors(spike, 200), LABELS,
                                         threshold=0.6)
    with pytest.raises(ValueError, match="smoothing_ms"):
        detect.smooth_posteriors(step, -1)


def test_suppression_and_one_detection_per_excursion():
    from kwsnb.evaluate import detect

    def detections(pulses, **options):
        times, posteriors = _posteriors(10, pulses)
        return [(round(t, 2), label) for t, label, _ in
                detect.find_detections(times, posteriors, LABELS, threshold=0.6, **options)]

    two = [(1.0, 1.1, "yes"), (1.5, 1.6, "no")]
    assert detections(two, suppression_ms=1000) == [(1.0, "yes")]
    assert detections(two, suppression_ms=300) == [(1.0, "yes"), (1.5, "no")]
    # A posterior that stays up fires once, however short the suppression.
    assert detections([(1.0, 4.0, "yes")], suppression_ms=100) == [(1.0, "yes")]
    # A keyword that rises during suppression and is still up when it ends fires then.
    assert detections([(1.0, 1.1, "yes"), (1.5, 2.5, "up")], suppression_ms=1000) == \
        [(1.0, "yes"), (2.0, "up")]
    # Ignored labels never fire; of two ready keywords the higher one wins.
    assert detections([(1.0, 1.1, "_unknown_")]) == []
    times, posteriors = _posteriors(3, [])
    posteriors[50, :] = [0, 0, 0.7, 0.3, 0.9, 0]
    assert detect.find_detections(times, posteriors, LABELS, threshold=0.25) == \
        [(pytest.approx(1.02), "up", pytest.approx(0.9))]


def test_sweep_thresholds_rescores_one_run():
    from kwsnb.evaluate import detect

    events = [(1.0, 1.4, "yes"), (3.0, 3.5, "no"), (6.0, 6.4, "down")]
    times, posteriors = _posteriors(600, [(1.2, 1.6, "yes"), (3.3, 3.7, "no")])
    posteriors[(times > 8) & (times < 8.3)] = [0.3, 0, 0, 0, 0.7, 0]  # a false "up" at 0.7
    sweep = detect.sweep_thresholds(posteriors, [0.5, 0.8, 1.01], label_names=LABELS,
                                       events=events, times_s=times, duration_s=600)
    assert [(s["hits"], s["false_accepts"]) for s in sweep] == [(2, 1), (2, 0), (0, 0)]
    assert sweep[0]["false_accepts_per_hour"] == pytest.approx(6.0)
    assert [s["miss_rate"] for s in sweep] == pytest.approx([1 / 3, 1 / 3, 1.0])
    result = detect.score_posteriors(times, posteriors, LABELS, events, 600)
    assert detect.sweep_thresholds(result, [0.5, 0.8, 1.01]) == sweep


def test_choose_operating_point_takes_the_fewest_misses_within_the_false_accept_budget():
    from kwsnb.evaluate import detect

    events = [(1.0, 1.4, "yes"), (3.0, 3.5, "no"), (6.0, 6.4, "down")]
    times, posteriors = _posteriors(600, [(1.2, 1.6, "yes"), (3.3, 3.7, "no")])
    weak = (times > 6.1) & (times < 6.5)
    posteriors[weak] = [0.45, 0, 0, 0, 0, 0.55]  # the "down" word, weakly
    posteriors[(times > 8) & (times < 8.04)] = [0.3, 0, 0, 0, 0.7, 0]  # a 40 ms false "up"
    result = detect.score_posteriors(times, posteriors, LABELS, events, 600,
                                     raw_posteriors=posteriors)
    point = detect.choose_operating_point(result, max_false_accepts_per_hour=0,
                                          smoothings_ms=(0, 100), thresholds=[0.5, 0.6, 0.8])
    # Unsmoothed, 0.5 finds all three words but also the false "up"; 100 ms of smoothing
    # flattens the 40 ms spike below 0.5 and keeps the 400 ms words above it.
    assert (point["smoothing_ms"], point["threshold"]) == (100, 0.5)
    assert point["met"] and point["miss_rate"] == 0 and point["false_accepts_per_hour"] == 0
    assert len(point["sweep"]) == 6
    # A budget nothing meets: the setting nearest the target, not a detector that never fires
    # (threshold 1.01 would have no false accept and miss everything).
    times, noisy = _posteriors(600, [(1.2, 1.6, "yes"), (3.2, 3.6, "no"), (20.0, 21.0, "up")])
    noisy[(times > 6.1) & (times < 6.5)] = [0.45, 0, 0, 0, 0, 0.55]  # "down", weakly
    loud = detect.score_posteriors(times, noisy, LABELS, events, 600, raw_posteriors=noisy)
    point = detect.choose_operating_point(loud, max_false_accepts_per_hour=1,
                                          smoothings_ms=(0,), thresholds=[0.5, 0.9, 1.01])
    assert not point["met"] and point["threshold"] == 0.5
    assert point["miss_rate"] == 0 and point["false_accepts_per_hour"] == pytest.approx(6.0)


def test_plot_draws_the_timeline():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kwsnb.evaluate import detect

    events = [(1.0, 1.5, "yes"), (4.0, 4.6, "no"), (8.0, 8.4, "yes"), (12.0, 12.5, "_unknown_"),
              (25.0, 25.5, "up")]
    times, posteriors = _posteriors(30, [(1.2, 1.5, "yes"), (6.0, 6.3, "down"),
                                         (25.2, 25.5, "up")])
    result = detect.score_posteriors(times, posteriors, LABELS, events, 30.0)
    assert result.detection_hits == [True, False, True]
    ax = result.plot(max_seconds=20)
    try:
        assert ax.get_xlim() == (0, 20)
        assert ax.get_xlabel() == "time (s)" and "posterior" in ax.get_ylabel()
        assert "2 of 4 keywords found, 1 false accept (120.0/h)" in ax.get_title()
        curves = [line for line in ax.get_lines() if line.get_label() in result.keywords]
        assert [line.get_label() for line in curves] == ["yes", "no", "up", "down"]
        assert all(line.get_xdata().max() <= 20 for line in curves)
        assert [text.get_text() for text in ax.texts] == ["yes", "no", "yes", "_unknown_"]
        markers = [line for line in ax.get_lines() if line.get_marker() in ("v", "x")
                   and len(line.get_xdata()) == 1]
        assert [(line.get_marker(), line.get_xdata()[0]) for line in markers] == \
            [("v", pytest.approx(1.2)), ("x", pytest.approx(6.0))]  # the 25.2 s hit is cut off
        assert len(ax.patches) == 4 + 2  # event spans up to 20 s, plus hatching on the 2 missed
        legend = {text.get_text() for text in ax.get_legend().get_texts()}
        assert {"hit", "false accept", "missed word", "threshold 0.6"} <= legend
    finally:
        plt.close(ax.figure)


# ---------------------------------------------------------------------------------------------
# Running models over a recording
# ---------------------------------------------------------------------------------------------

def test_every_keras_mode_streams_the_same(untrained, short_recording):
    """A non-stream, internal- or external-state model all run as the same external-state graph,
    and that graph computes what StreamRunner (one eager call per packet) computes."""
    from scipy.special import softmax

    from kwsnb import streaming
    from kwsnb.evaluate import detect

    results = [detect.detect(model, short_recording, LABELS, smoothing_ms=0, threshold=0.3)
               for model in (untrained, streaming.to_stream_internal(untrained),
                             streaming.to_stream_external(untrained))]
    runner = streaming.StreamRunner(streaming.to_stream_external(untrained))
    reference = softmax(np.stack([runner.step(packet) for packet in
                                  short_recording.audio[:150 * 320].reshape(150, 320)]), axis=-1)
    np.testing.assert_allclose(results[0].posteriors[:150], reference, atol=1e-5)
    for result in results[1:]:
        np.testing.assert_allclose(result.posteriors, results[0].posteriors, atol=1e-5)
        assert [d[:2] for d in result.detections] == [d[:2] for d in results[0].detections]
    assert results[0].posteriors.shape == (12 * SAMPLE_RATE // 320, len(LABELS))
    np.testing.assert_allclose(results[0].times_s[:2], [0.02, 0.04])
    assert results[0].packets_per_second > 0


def test_detect_explains_bad_input(untrained, short_recording, tmp_path):
    import keras

    from kwsnb.data import long_audio
    from kwsnb.evaluate import detect
    from kwsnb.tflite.export import ExportError

    recording = short_recording
    resampled = long_audio.LongRecording(recording.audio[::2], 8000, recording.events)
    with pytest.raises(ValueError, match="8000 Hz but the model expects 16000 Hz"):
        detect.detect(untrained, resampled, LABELS)
    unknown_only = long_audio.LongRecording(
        recording.audio, SAMPLE_RATE, [e for e in recording.events if e[2] == "_unknown_"])
    with pytest.raises(ValueError, match="no events of the keywords"):
        detect.detect(untrained, unknown_only, LABELS)
    with pytest.raises(ValueError, match="5 names but the model outputs 6"):
        detect.detect(untrained, recording, LABELS[:5])
    foreign = keras.Sequential([keras.Input((320,)), keras.layers.Dense(6)], name="foreign")
    with pytest.raises(ValueError, match="'foreign' was not made by kwsnb.models.build"):
        detect.detect(foreign, recording, LABELS)
    with pytest.raises(TypeError, match="LongRecording"):
        detect.detect(untrained, recording.audio, LABELS)
    with pytest.raises(TypeError, match="streaming .tflite"):
        detect.detect(42, recording, LABELS)
    with pytest.raises(ExportError, match="nowhere.*not found"):
        detect.detect(tmp_path / "nowhere", recording, LABELS)


# ---------------------------------------------------------------------------------------------
# Slow: a trained model, TFLite formats, real speech
# ---------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_every_architecture_streams_in_the_graph(name, short_recording):
    """The one-graph runner computes what StreamRunner does, packet by packet, for every model."""
    import keras
    from scipy.special import softmax

    from kwsnb import models, streaming
    from kwsnb.evaluate import detect

    keras.utils.set_random_seed(0)
    model = models.build(name, label_count=len(LABELS))
    result = detect.detect(model, short_recording, LABELS)
    runner = streaming.StreamRunner(streaming.to_stream_external(model))
    reference = softmax(np.stack([runner.step(packet) for packet in
                                  short_recording.audio[:100 * 320].reshape(100, 320)]), axis=-1)
    np.testing.assert_allclose(result.raw_posteriors[:100], reference, atol=1e-5)


@pytest.mark.slow
def test_trained_model_finds_most_words(easy_result, easy_recording):
    from kwsnb.evaluate import detect

    result = easy_result
    print("easy recording:", result.summary())
    assert result.hits > result.misses, result.summary()
    assert result.posteriors.shape == (len(easy_recording.audio) // 320, len(LABELS))
    np.testing.assert_allclose(result.raw_posteriors.sum(axis=1), 1.0, rtol=1e-5)
    assert result.duration_s == 60 and result.packets_per_second > 0
    assert result.false_accepts_per_hour == pytest.approx(result.false_accepts * 60)
    assert result.miss_rate == pytest.approx(result.misses / result.keyword_events)
    # Re-thresholding the same run: the same answer at the same threshold, nothing above 1.
    sweep = detect.sweep_thresholds(result, [0.6, 1.01])
    assert (sweep[0]["hits"], sweep[0]["false_accepts"]) == (result.hits, result.false_accepts)
    assert sweep[1]["detections"] == 0 and sweep[1]["miss_rate"] == 1.0
    # Another smoothing without a re-run: raw posteriors peak at least as high as their average.
    unsmoothed = detect.rescore(result, smoothing_ms=0)
    assert unsmoothed.settings["smoothing_ms"] == 0
    assert np.all(unsmoothed.posteriors.max(axis=0) >= result.posteriors.max(axis=0) - 1e-6)


@pytest.mark.slow
def test_tflite_streams_agree_with_keras(model, easy_recording, easy_result, tmp_path):
    from kwsnb.evaluate import detect
    from kwsnb.tflite import export as exporting

    formats = ("tflite_float", "tflite_stream_external_float", "tflite_stream_internal_float")
    paths = exporting.export(model, tmp_path, None, LABELS, formats=formats)
    for name in formats[1:]:
        for source in (paths[name], paths[name].parent):  # the .tflite or its format folder
            result = detect.detect(source, easy_recording, LABELS)
            np.testing.assert_allclose(result.posteriors, easy_result.posteriors, atol=1e-4)
            assert [label for _, label, _ in result.detections] == \
                [label for _, label, _ in easy_result.detections]
            np.testing.assert_allclose([t for t, _, _ in result.detections],
                                       [t for t, _, _ in easy_result.detections])
            assert (result.hits, result.false_accepts) == (easy_result.hits,
                                                           easy_result.false_accepts)
            print(f"{name}: {result.packets_per_second:,.0f} packets/s")
    # A non-stream model is refused, by its metadata or (without it) by its signature.
    with pytest.raises(ValueError, match="non-stream model .tflite_float.*streaming format"):
        detect.detect(paths["tflite_float"], easy_recording, LABELS)
    bare = tmp_path / "bare.tflite"
    shutil.copy(paths["tflite_float"], bare)
    with pytest.raises(ValueError, match="bare.tflite is a non-stream model"):
        detect.detect(bare, easy_recording, LABELS)
    with pytest.raises(ValueError, match="differ from the model's labels"):
        detect.detect(paths["tflite_stream_external_float"], easy_recording,
                         ["silence", *LABELS[1:]])


@pytest.mark.slow
@pytest.mark.real_data
def test_real_speech_over_real_noise(real_train_dir, real_test_dir, tmp_path):
    """keyword_task's model (yes/no/up/down, about 90% on clips) over two minutes of the
    held-out speakers' words mixed with the official noise recordings at 20 dB SNR."""
    from kwsnb.data import long_audio
    from kwsnb.evaluate import detect
    from kwsnb.tflite import export as exporting

    task = keyword_task(str(real_train_dir), str(real_test_dir))
    recording = long_audio.make_long_recording(task.test_audio, task.test_labels, task.labels,
                                              noise=real_train_dir, duration_s=120, seed=0)
    result = detect.detect(task.model, recording, task.labels, ignore=())
    print("real speech:", result.summary())
    assert result.hits > result.misses
    path = exporting.export(task.model, tmp_path, None, task.labels,
                            formats=["tflite_stream_external_float"])
    lite = detect.detect(path["tflite_stream_external_float"], recording, task.labels,
                            ignore=())
    np.testing.assert_allclose(lite.posteriors, result.posteriors, atol=1e-4)


def test_recordings_and_settings_that_would_stream_wrong_are_refused(untrained, short_recording,
                                                                    tmp_path):
    # Each was accepted: a stereo array was interleaved (every word missed), a NaN sample
    # poisoned an internal-state stream for the rest of the recording, threshold 2.0 never fired.
    import soundfile

    from kwsnb.data import long_audio
    from kwsnb.evaluate import detect

    audio, events = short_recording.audio, short_recording.events
    with pytest.raises(ValueError, match=r"1-D audio \[samples\], got shape \(192000, 2\)"):
        long_audio.LongRecording(np.stack([audio, audio], axis=1), SAMPLE_RATE, events)
    column = long_audio.LongRecording(audio[:, np.newaxis], SAMPLE_RATE, events)
    np.testing.assert_array_equal(column.audio, audio)  # one channel is unambiguous
    holed = audio.copy()
    holed[SAMPLE_RATE * 3] = np.nan
    with pytest.raises(ValueError, match=r"1 NaN or infinite samples \(the first at 3.000 s\)"):
        long_audio.LongRecording(holed, SAMPLE_RATE, events)
    changed = long_audio.LongRecording(audio.copy(), SAMPLE_RATE, events)
    changed.audio[5] = np.inf  # changed after it was made: detect checks again
    with pytest.raises(ValueError, match="NaN or infinite"):
        detect.detect(untrained, changed, LABELS)
    soundfile.write(tmp_path / "holed.wav", holed, SAMPLE_RATE, subtype="FLOAT")
    short_recording.save(tmp_path / "events.wav")
    (tmp_path / "events.csv").rename(tmp_path / "holed.csv")
    with pytest.raises(ValueError, match=r"holed\.wav.*NaN"):
        long_audio.LongRecording.load(tmp_path / "holed.wav")
    for threshold in (2.0, 0.0, -0.5):
        with pytest.raises(ValueError, match="threshold must be in"):
            detect.detect(untrained, short_recording, LABELS, threshold=threshold)
    with pytest.raises(ValueError, match="suppression_ms must be >= 0"):
        detect.detect(untrained, short_recording, LABELS, suppression_ms=-1)
