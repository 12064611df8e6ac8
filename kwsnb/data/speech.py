"""Where the speech in a clip is: from the first to the last 32 ms frame (8 ms hop) within
``SPEECH_TOP_DB`` of the loudest frame's power, as ``librosa.effects.trim`` (whose first call
costs seconds of imports). ``speech_extent`` does one clip (long recordings place words by it);
``speech_extents`` a whole clip store at once with running sums (training windows label by it;
tests/test_stream_windows.py holds the two equal). Words are placed with ``WORD_MARGIN_S`` around
their speech and faded in and out over ``WORD_FADE_S``."""
from __future__ import annotations

import numpy as np

SPEECH_TOP_DB = 20.0
WORD_MARGIN_S = 0.1
WORD_FADE_S = 0.01


def speech_extent(clip: np.ndarray, sample_rate: int = 16000,
                  top_db: float = SPEECH_TOP_DB) -> tuple[int, int]:
    """(first, end) sample of the speech in ``clip``: from the first to the last 32 ms frame
    (8 ms hop) within ``top_db`` of the loudest frame's power, as ``librosa.effects.trim`` (whose
    first call costs seconds of imports). (0, 0) for a silent clip."""
    clip = np.asarray(clip, np.float32).reshape(-1)
    if not np.any(clip):
        return 0, 0
    frame = min(len(clip), max(16, int(0.032 * sample_rate)))
    hop = max(1, frame // 4)
    frames = np.lib.stride_tricks.sliding_window_view(clip, frame)[::hop]
    power = np.mean(frames.astype(np.float64) ** 2, axis=1)
    loud = np.flatnonzero(power >= power.max() * 10.0 ** (-top_db / 10.0))
    return int(loud[0] * hop), int(min(len(clip), loud[-1] * hop + frame))


def speech_extents(clips: np.ndarray, sample_rate: int = 16000, top_db: float = SPEECH_TOP_DB,
                   chunk: int = 256) -> np.ndarray:
    """[clips, 2] (first, end) sample of each clip's speech: ``speech_extent``
    (32 ms frames, 8 ms hop, within ``top_db`` of the loudest frame's power) for a whole clip
    store at once. (0, 0) for a silent clip."""
    clips = np.asarray(clips)
    count, samples = clips.shape
    frame = min(samples, max(16, int(0.032 * sample_rate)))
    hop = max(1, frame // 4)
    starts = np.arange(0, samples - frame + 1, hop)
    result = np.zeros((count, 2), np.int64)
    for first in range(0, count, chunk):
        block = clips[first:first + chunk].astype(np.float64)
        if np.issubdtype(clips.dtype, np.integer):
            block /= 32768.0
        sums = np.concatenate([np.zeros((len(block), 1)), np.cumsum(block ** 2, axis=1)], axis=1)
        power = (sums[:, starts + frame] - sums[:, starts]) / frame
        peak = power.max(axis=1, keepdims=True)
        loud = power >= peak * 10.0 ** (-top_db / 10.0)
        first_frame = np.argmax(loud, axis=1)
        last_frame = len(starts) - 1 - np.argmax(loud[:, ::-1], axis=1)
        extents = np.stack([first_frame * hop, np.minimum(samples, last_frame * hop + frame)], 1)
        extents[peak[:, 0] <= 0] = 0
        result[first:first + len(block)] = extents
    return result
