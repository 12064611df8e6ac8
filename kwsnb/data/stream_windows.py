"""Training windows cut from a stream: what a streaming model meets between centred words.

A model trained only on 1 s clips with one word near the middle never sees, in training, what a
stream shows it 49 times a second: a word's first half, a word's end with the next word's start,
two words in one second. ``StreamWindows`` makes such examples from the training split itself:
for each example it lays three training words (an anchor and a random word before and after it,
keywords and non-keywords as the split holds them) one after the other with short random gaps,
as ``kwsnb.data.long_audio`` places words (each word's speech extent plus a margin, faded in and out),
and cuts a 1 s window at a random offset that holds at least a tenth of the anchor's speech.
The label rule:

* a keyword whose speech extent lies fully inside the window labels it (two of them: the later);
* otherwise, a keyword with more than ``ambiguous_fraction`` (but not all) of its speech inside
  is neither a detection nor a rejection to learn: the offset is drawn again;
* otherwise, a window holding at least ``min_fraction`` (half) of any word's speech (a
  non-keyword, half a keyword) is ``_unknown_``; one holding less of every word is
  ``_silence_``, as Speech Commands' own background clips hold other sounds. (With
  ``min_fraction`` 0.1, windows of noise and a small fragment were ``_unknown_``, and the model
  called the test set's loud silence clips ``_unknown_``: 99.5% -> 70% correct.)

A word's speech extent is the same measure ``kwsnb.data.long_audio`` uses for a recording's events
(frames within 20 dB of the clip's loudest, :func:`speech_extents` computes it for the whole
clip store at once), so "fully inside" means what a streaming benchmark counts as the word.

``SpeechCommands(stream_window_percentage=P)`` replaces P% of each training batch with such
windows (training flag ``--stream_window_percentage``; 0, the default, leaves training as it
was). Windows get the batch's background noise but no stretch and no time shift: their offsets
are the shift, and a stretch would move the speech the label was decided on.
"""
from __future__ import annotations

import numpy as np

# Words are cut and placed as in long recordings, so a window looks like a piece of one.
from kwsnb.data.speech import WORD_FADE_S, WORD_MARGIN_S, speech_extents

# A window holds at least this share of its anchor word's speech (fragments included).
ANCHOR_OVERLAP = 0.1


def window_label(window_start: int, window_samples: int, words, keyword_ids, *,
                 silence_id: int = 0, unknown_id: int = 1, min_fraction: float = 0.5,
                 ambiguous_fraction: float = 0.5):
    """The label of a window [window_start, window_start + window_samples) of a stream whose
    words are ``words`` [(speech_start, speech_end, label_id), ...], or None when a keyword is
    partly but mostly inside (an offset not to train on). See the module docstring."""
    window_end = window_start + window_samples
    full, ambiguous, heard = [], False, False
    for start, end, label in words:
        length = max(1, end - start)
        inside = max(0, min(end, window_end) - max(start, window_start)) / length
        if label in keyword_ids and inside >= 1.0:
            full.append((end, label))
        elif label in keyword_ids and inside > ambiguous_fraction:
            ambiguous = True
        if inside >= min_fraction:
            heard = True
    if full:
        return max(full)[1]
    if ambiguous:
        return None
    return unknown_id if heard else silence_id


class StreamWindows:
    """Draws batches of stream windows from a clip store (see the module docstring).

    ``clips`` int16 [rows, samples] (a ``SpeechCommands`` store), ``rows`` / ``label_ids`` the
    training split's rows and labels (silence rows are never words), ``keyword_ids`` the labels
    that are keywords. ``gap_s`` (low, high): the silence between one word's speech and the
    next's. Deterministic: a batch depends on ``seed`` and its step number alone.
    """

    def __init__(self, clips: np.ndarray, rows, label_ids, keyword_ids, *, silence_id: int = 0,
                 unknown_id: int = 1, sample_rate: int = 16000, gap_s=(0.05, 1.0),
                 min_fraction: float = 0.5, ambiguous_fraction: float = 0.5, seed: int = 0):
        self.clips = clips
        self.samples = int(clips.shape[1])
        rows = np.asarray(rows, np.int64)
        label_ids = np.asarray(label_ids, np.int32)
        words = label_ids != silence_id
        unique_rows, inverse = np.unique(rows[words], return_inverse=True)
        extents = speech_extents(clips[unique_rows], sample_rate)[inverse]
        spoken = extents[:, 1] > extents[:, 0]
        self.rows = rows[words][spoken]
        self.label_ids = label_ids[words][spoken]
        self.extents = extents[spoken]
        if not len(self.rows):
            raise ValueError("stream windows need word clips in the training split")
        self.keyword_ids = frozenset(int(k) for k in keyword_ids)
        self.silence_id, self.unknown_id = int(silence_id), int(unknown_id)
        self.margin = int(WORD_MARGIN_S * sample_rate)
        fade = max(1, int(WORD_FADE_S * sample_rate))
        self.fade = (np.sin(np.linspace(0.0, np.pi / 2, fade)) ** 2).astype(np.float32)
        self.gap = (int(gap_s[0] * sample_rate), int(gap_s[1] * sample_rate))
        self.min_fraction = float(min_fraction)
        self.ambiguous_fraction = float(ambiguous_fraction)
        self.seed = int(seed)

    def _piece(self, index: int):
        """(audio float32, speech offset in it, speech length) of word ``index``, faded."""
        first, end = self.extents[index]
        clip = self.clips[self.rows[index]]
        piece_first = max(0, first - self.margin)
        piece = clip[piece_first:min(len(clip), end + self.margin)].astype(np.float32) / 32768.0
        fade = min(len(self.fade), len(piece) // 2)
        piece[:fade] *= self.fade[:fade]
        piece[len(piece) - fade:] *= self.fade[:fade][::-1]
        return piece, int(first - piece_first), int(end - first)

    def example(self, rng: np.random.Generator):
        """(window int16 [samples], label id) of one window."""
        n = self.samples
        picks = rng.integers(len(self.rows), size=3)  # before, anchor, after
        pieces = [self._piece(int(i)) for i in picks]
        gaps = rng.integers(self.gap[0], self.gap[1] + 1, size=2)
        # Speech starts on a timeline with n samples of room before and after.
        stream_words, position = [], n
        speech_starts = []
        for k, (piece, offset, length) in enumerate(pieces):
            if k:
                previous_end = speech_starts[-1] + pieces[k - 1][2]
                position = previous_end + int(gaps[k - 1])
            speech_starts.append(position)
            stream_words.append((position, position + length, int(self.label_ids[picks[k]])))
        total = speech_starts[-1] + pieces[-1][2] + self.margin + n
        stream = np.zeros(total, np.float32)
        for (piece, offset, _), start in zip(pieces, speech_starts):
            begin = start - offset
            stream[begin:begin + len(piece)] += piece
        anchor_start, anchor_end, _ = stream_words[1]
        anchor_length = anchor_end - anchor_start
        need = int(np.ceil(ANCHOR_OVERLAP * anchor_length))
        low, high = anchor_start + need - n, anchor_end - need  # window overlaps the anchor
        label = None
        for _ in range(20):
            start = int(rng.integers(low, high + 1))
            label = window_label(start, n, stream_words, self.keyword_ids,
                                 silence_id=self.silence_id, unknown_id=self.unknown_id,
                                 min_fraction=self.min_fraction,
                                 ambiguous_fraction=self.ambiguous_fraction)
            if label is not None:
                break
        if label is None:  # every draw was ambiguous: the anchor cut in half, a fragment
            start = anchor_start + anchor_length // 2
            label = window_label(start, n, stream_words, self.keyword_ids,
                                 silence_id=self.silence_id, unknown_id=self.unknown_id,
                                 min_fraction=self.min_fraction, ambiguous_fraction=1.0)
        window = stream[start:start + n]
        return np.round(np.clip(window, -1.0, 32767 / 32768) * 32768).astype(np.int16), label

    def batch(self, step, count: int):
        """(audio int16 [count, samples], labels int32 [count]) for batch number ``step``."""
        rng = np.random.default_rng([self.seed, int(step)])
        audio = np.empty((int(count), self.samples), np.int16)
        labels = np.empty(int(count), np.int32)
        for i in range(int(count)):
            audio[i], labels[i] = self.example(rng)
        return audio, labels

    def dataset(self, count: int, noise, augment_options: dict):
        """An endless ``tf.data`` of (audio float32 [count, samples], labels int32 [count])
        window batches with background noise mixed as ``kwsnb.data.augment_audio`` does (no
        stretch, no shift)."""
        import tensorflow as tf

        from kwsnb.data.augment import augment_audio

        options = {**augment_options, "resample": 0.0, "time_shift_samples": 0}
        samples = self.samples

        def load(step):
            audio, labels = tf.numpy_function(lambda s: self.batch(s, count), [step],
                                              (tf.int16, tf.int32), stateful=False)
            audio = tf.ensure_shape(audio, [count, samples])
            labels = tf.ensure_shape(labels, [count])
            seed = tf.stack([tf.constant(self.seed + 7919, tf.int64), step])
            return augment_audio(audio, tf.zeros([count], tf.bool), noise, seed,
                                 jit_compile=True, **options), labels

        return tf.data.Dataset.counter().map(load, num_parallel_calls=tf.data.AUTOTUNE,
                                              deterministic=True)


def mix_batches(clip_batches, window_batches):
    """Each clip batch followed by a window batch, as one batch (the clips first)."""
    import tensorflow as tf

    def join(clips, windows):
        return (tf.concat([clips[0], windows[0]], 0), tf.concat([clips[1], windows[1]], 0))

    return tf.data.Dataset.zip((clip_batches, window_batches)).map(join)
