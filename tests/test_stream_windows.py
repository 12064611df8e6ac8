"""Stream windows: the label rule (a keyword only when its speech is fully inside the window)."""
from __future__ import annotations

import numpy as np
import pytest

from kwsnb.data import stream_windows
from kwsnb.data.speech import speech_extent, speech_extents
from kwsnb.data.stream_windows import StreamWindows, window_label

SILENCE, UNKNOWN, YES, NO = 0, 1, 2, 3
KEYWORDS = {YES, NO}


def test_window_label_rule():
    n = 16000
    # A keyword fully inside, a keyword with 40% inside, 80% inside, only a non-keyword, nothing.
    assert window_label(0, n, [(4000, 9000, YES)], KEYWORDS) == YES
    assert window_label(0, n, [(14000, 19000, YES)], KEYWORDS) == SILENCE  # under half
    assert window_label(0, n, [(14000, 19000, YES)], KEYWORDS, min_fraction=0.1) == UNKNOWN
    assert window_label(0, n, [(12000, 17000, YES)], KEYWORDS) is None
    assert window_label(0, n, [(4000, 9000, UNKNOWN)], KEYWORDS) == UNKNOWN
    assert window_label(0, n, [(15800, 20800, YES)], KEYWORDS, min_fraction=0.1) == SILENCE
    # A full keyword wins over a fragment of another; of two full keywords the later one.
    assert window_label(0, n, [(-3000, 2000, NO), (5000, 9000, YES)], KEYWORDS) == YES
    assert window_label(0, n, [(1000, 5000, NO), (9000, 14000, YES)], KEYWORDS) == YES
    assert window_label(0, n, [(1000, 5000, YES), (9000, 14000, NO)], KEYWORDS) == NO
    # The window's start matters: the same word, shifted out by one sample, is a fragment.
    assert window_label(4000, n, [(4000, 9000, YES)], KEYWORDS) == YES
    assert window_label(4001, n, [(4000, 9000, YES)], KEYWORDS) is None


def test_speech_extents_match_long_audio():
    rng = np.random.default_rng(0)
    clips = (rng.normal(0, 30, (6, 16000))).astype(np.int16)
    for i, (first, end) in enumerate([(2000, 9000), (0, 4000), (12000, 16000), (5000, 5600),
                                      (3000, 15000), (7000, 11000)]):
        clips[i, first:end] += (rng.normal(0, 3000, end - first)).astype(np.int16)
    clips[5] = 0  # silent: (0, 0)
    expected = [speech_extent(clip.astype(np.float32) / 32768.0) for clip in clips]
    assert speech_extents(clips).tolist() == [list(e) for e in expected]


def _burst_clips(length=6000):
    """Clips of zeros with one constant burst of `length` samples at a random place; the burst's
    value names its label (label * 1000), so a window shows which words' speech it holds."""
    rng = np.random.default_rng(1)
    labels = np.array([UNKNOWN, YES, NO] * 20, np.int32)
    clips = np.zeros((len(labels) + 1, 16000), np.int16)  # the last row: a silence clip
    for i, label in enumerate(labels):
        first = int(rng.integers(1700, 16000 - length - 1700))
        clips[i, first:first + length] = label * 1000
    rows = np.arange(len(clips))
    return clips, rows, np.append(labels, SILENCE), length


def _runs(window):
    """(label, samples) of each burst (run of one nonzero value) in a window: one per word."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], window, [0]])) != 0)
    return [(int(window[a]) // 1000, int(b - a)) for a, b in zip(edges[:-1], edges[1:])
            if window[a] != 0]


def test_windows_follow_the_rule_on_bursts():
    clips, rows, labels, length = _burst_clips()
    windows = StreamWindows(clips, rows, labels, KEYWORDS, seed=3)
    assert windows.min_fraction == 0.5
    assert len(windows.rows) == len(clips) - 1  # the silence row is never a word
    audio, got = windows.batch(0, 400)
    assert audio.shape == (400, 16000) and audio.dtype == np.int16
    for window, label in zip(audio, got):
        runs = _runs(window)
        whole = [word for word, samples in runs if word in KEYWORDS and samples == length]
        if label in KEYWORDS:  # that keyword's whole burst is in the window
            assert label in whole
        else:  # no keyword is whole, none is mostly inside (never a training example)
            # (a word's speech extent, in 32 ms frames, reaches up to `slack` beyond its burst)
            slack = 1024
            assert not whole
            assert all(samples <= (length + slack) / 2 for word, samples in runs
                       if word in KEYWORDS)
            if any(samples >= 0.5 * (length + slack) for _, samples in runs):
                assert label == UNKNOWN
            if not runs:
                assert label == SILENCE
    # Every kind of window occurs: keywords, non-keywords, fragments only.
    assert {YES, NO, UNKNOWN, SILENCE} <= set(got.tolist())
    # Deterministic per (seed, step); another step, other windows.
    again, same = windows.batch(0, 400)
    assert np.array_equal(again, audio) and np.array_equal(same, got)
    assert not np.array_equal(windows.batch(1, 400)[0], audio)


def test_window_batches_join_clip_batches():
    tf = pytest.importorskip("tensorflow")
    clips, rows, labels, _ = _burst_clips()
    windows = StreamWindows(clips, rows, labels, KEYWORDS, seed=3)
    options = dict(resample=0.15, volume_resample=0.0, time_shift_samples=1600,
                   background_frequency=0.8, background_volume=0.1, silence_volume=None)
    clip_batches = tf.data.Dataset.from_tensors(
        (tf.zeros([6, 16000]), tf.zeros([6], tf.int32))).repeat()
    mixed = stream_windows.mix_batches(clip_batches, windows.dataset(4, None, options))
    audio, got = next(iter(mixed))
    assert audio.shape == (10, 16000) and got.shape == (10,)
    assert np.array_equal(got.numpy()[6:], windows.batch(0, 4)[1])
