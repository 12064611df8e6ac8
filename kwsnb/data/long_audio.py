"""Long recordings with words at known places: test clips laid over background noise.

``make_long_recording`` places clips over noise and records where each word is
(``LongRecording``: audio plus ``(start_s, end_s, label)`` events; ``save``/``load`` as a wav and
a csv); ``kwsnb.evaluate.detect`` streams a model over one and scores it. Decisions:

* Word positions are the speech extent of each clip (frames within SPEECH_TOP_DB of the clip's
  loudest, as librosa.effects.trim): the clip's leading and trailing background is not "the word".
  The extent plus WORD_MARGIN_S each side is placed, faded in and out, so the recording's gaps
  are the background noise alone and ``gap_s`` is the silence between words.
* ``noise_level`` is the background's RMS relative to the words' speech RMS (0.1: 20 dB SNR):
  the official noise files are 10x quieter than the synthetic set's, so a gain would make the
  same setting mean different things on different data.
"""
from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kwsnb.data.files import atomic_write
from kwsnb.data.speech import WORD_FADE_S, WORD_MARGIN_S, speech_extent


NOISE_CROSSFADE_S = 0.05


@dataclass
class LongRecording:
    """A long recording with the position of every word placed in it.

    ``audio`` float32 [samples]; ``events`` (start_s, end_s, label) of every word, in time order.
    """

    audio: np.ndarray = field(repr=False)
    sample_rate: int
    events: list[tuple[float, float, str]]

    def __post_init__(self):
        self.audio = mono_audio(self.audio, self.sample_rate)

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate

    def __repr__(self) -> str:
        return (f"LongRecording({self.duration_s:.1f} s at {self.sample_rate} Hz, "
                f"{len(self.events)} words)")

    def save(self, path) -> None:
        """Writes ``path`` (16-bit wav; ``.wav`` added when there is no suffix) and the events
        as ``<stem>.csv`` beside it (columns start_s, end_s, label)."""
        import soundfile

        path = Path(path)
        if not path.suffix:
            path = path.with_suffix(".wav")
        path.parent.mkdir(parents=True, exist_ok=True)
        events_path = path.with_suffix(".csv")
        atomic_write(path, lambda temporary: soundfile.write(
            temporary, np.clip(self.audio, -1.0, 32767 / 32768), self.sample_rate,
            subtype="PCM_16"))

        def write_events(temporary: Path) -> None:
            with temporary.open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["start_s", "end_s", "label"])
                writer.writerows([f"{start:.4f}", f"{end:.4f}", label]
                                 for start, end, label in self.events)

        # The events last: a reader (a second benchmark sharing the cache) that finds them finds
        # the whole audio beside them.
        atomic_write(events_path, write_events)

    @classmethod
    def load(cls, path) -> "LongRecording":
        """Reads what :meth:`save` wrote: the audio file and ``<stem>.csv`` beside it."""
        from kwsnb.data.audio import read_float

        path = Path(path)
        events_path = path.with_suffix(".csv")
        if not path.is_file():
            raise FileNotFoundError(f"recording {path} not found")
        if not events_path.is_file():
            raise FileNotFoundError(f"{events_path} not found: a long recording needs its events "
                                    "file (LongRecording.save writes both)")
        try:
            audio, sample_rate = read_float(path)
        except Exception as error:  # libsndfile's messages do not name the file
            raise ValueError(f"cannot read recording {path}: {error}") from None
        with events_path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        try:
            events = [(float(row["start_s"]), float(row["end_s"]), row["label"]) for row in rows]
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{events_path}: expected columns start_s,end_s,label ({error})") \
                from None
        try:
            return cls(audio.mean(axis=1), int(sample_rate), events)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None


def mono_audio(audio, sample_rate: int = 16000, what: str = "the recording") -> np.ndarray:
    """``audio`` as float32 [samples]; ValueError for what a stream would silently get wrong:
    several channels (flattening interleaves them), NaN or infinite samples (they poison a
    streaming model's state from then on)."""
    audio = np.asarray(audio, np.float32)
    if audio.ndim == 2 and 1 in audio.shape:
        audio = audio.reshape(-1)
    if audio.ndim != 1:
        raise ValueError(f"{what} must be 1-D audio [samples], got shape {audio.shape}: mix "
                         "several channels down first, e.g. audio.mean(axis=1) for [samples, "
                         "channels]")
    bad = np.flatnonzero(~np.isfinite(audio))
    if len(bad):
        raise ValueError(f"{what} has {len(bad)} NaN or infinite samples (the first at "
                         f"{bad[0] / sample_rate:.3f} s): replace them, e.g. "
                         "np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0)")
    return audio


def _noise_arrays(noise, sample_rate: int) -> list[np.ndarray]:
    """The noise recordings as float32 arrays, from an array, a list of arrays, a
    BackgroundNoise or a folder (a data folder's _background_noise_ or a folder of files)."""
    from kwsnb import data

    if isinstance(noise, data.BackgroundNoise):
        return [noise.samples[start:start + length]
                for start, length in zip(noise.starts, noise.lengths)]
    if isinstance(noise, (str, Path)):
        folder = Path(noise).expanduser()
        if (folder / data.BACKGROUND_NOISE_DIR_NAME).is_dir():
            folder = folder / data.BACKGROUND_NOISE_DIR_NAME
        if not folder.is_dir():
            raise FileNotFoundError(f"noise folder {folder} not found (give a data folder with "
                                    f"{data.BACKGROUND_NOISE_DIR_NAME}/, a folder of noise files, "
                                    "or arrays)")
        files = sorted(p for p in folder.iterdir()
                       if p.suffix.lower() in data.AUDIO_EXTENSIONS and p.is_file())
        loaded = data.BackgroundNoise.from_files(files, sample_rate)
        if not len(loaded):
            raise ValueError(f"no usable noise recordings (*.wav, *.flac longer than 1 s) in "
                             f"{folder}")
        return _noise_arrays(loaded, sample_rate)
    arrays = [noise] if isinstance(noise, np.ndarray) and noise.ndim == 1 else list(noise)
    arrays = [np.asarray(a, np.float32) for a in arrays]
    bad = [i for i, a in enumerate(arrays) if a.ndim != 1 or len(a) < sample_rate // 10]
    if not arrays or bad:
        raise ValueError("noise must be a 1-D array, a list of 1-D arrays (each at least 0.1 s), "
                         f"or a folder; got {len(arrays)} arrays, unusable: {bad}")
    silent = [i for i, a in enumerate(arrays) if not np.any(a)]
    if silent:
        raise ValueError(f"noise array(s) {silent} are all zeros")
    return arrays


def _noise_track(arrays: list[np.ndarray], samples: int, rng: np.random.Generator,
                 crossfade: int) -> np.ndarray:
    """``samples`` of noise at unit RMS: random stretches of random recordings (each first
    scaled to unit RMS), joined by equal-power crossfades of ``crossfade`` samples."""
    arrays = [a / np.sqrt(np.mean(a.astype(np.float64) ** 2)) for a in arrays]
    track = np.zeros(samples + crossfade, np.float64)
    position, overlap = 0, 0  # overlap: the previous stretch's fade-out, this one's fade-in

    def ramp(length):
        return np.linspace(0.0, np.pi / 2, length)

    while position < samples:
        source = arrays[rng.integers(len(arrays))]
        offset = int(rng.integers(0, max(1, len(source) // 2)))  # long stretches, few joins
        piece = source[offset:offset + samples - position + crossfade].astype(np.float64)
        overlap = min(overlap, len(piece))
        piece[:overlap] *= np.sin(ramp(overlap))
        fade_out = min(crossfade, (len(piece) - overlap) // 2)
        piece[len(piece) - fade_out:] *= np.cos(ramp(fade_out))
        track[position:position + len(piece)] += piece
        position += len(piece) - fade_out
        overlap = fade_out
    track = track[:samples]
    return (track / max(np.sqrt(np.mean(track ** 2)), 1e-12)).astype(np.float32)


def make_long_recording(audio, labels, label_names: Sequence[str], *, noise=None,
                        duration_s: float = 300.0, gap_s: tuple[float, float] = (1.0, 3.0),
                        noise_level: float = 0.1, seed: int = 0,
                        sample_rate: int = 16000) -> LongRecording:
    """A recording of ``duration_s`` with words placed at random gaps over background noise.

    ``audio`` [clips, samples] and int ``labels`` (indices into ``label_names``), e.g. from
    ``kwsnb.data.read_test_folder`` or ``SpeechCommands.arrays``. Every clip not labelled
    ``_silence_`` is a word (``_unknown_`` words included: they test false accepts); clips are
    drawn in a seeded random order, each used once before any is repeated. Each word's speech
    extent (:func:`speech_extent`) gives its event; ``gap_s`` (low, high) is the uniform random
    silence between one word's end and the next one's start.

    ``noise``: None (quiet), a 1-D array, a list of arrays, a ``kwsnb.data.BackgroundNoise`` or a
    folder (``<data>/_background_noise_`` or the data folder itself). ``noise_level``: the
    noise's RMS relative to the words' speech RMS (0.1 = 20 dB SNR).
    """
    audio = np.asarray(audio, np.float32)
    labels = np.asarray(labels).reshape(-1)
    label_names = [str(name) for name in label_names]
    if audio.ndim != 2 or not len(audio):
        raise ValueError(f"audio must be clips [clips, samples], got shape {audio.shape}")
    if len(labels) != len(audio):
        raise ValueError(f"{len(audio)} clips but {len(labels)} labels")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or \
            labels.max() >= len(label_names):
        raise ValueError(f"labels must be integer indices into label_names ({len(label_names)} "
                         f"names), got {labels.dtype} values {labels.min()}..{labels.max()}")
    low, high = (float(g) for g in gap_s)
    if not 0 <= low <= high:
        raise ValueError(f"gap_s must be (low, high) seconds with 0 <= low <= high, got {gap_s}")
    if duration_s <= 0 or noise_level < 0:
        raise ValueError(f"duration_s must be > 0 and noise_level >= 0 (got {duration_s}, "
                         f"{noise_level})")
    from kwsnb.data import SILENCE_LABEL as silence

    words = np.flatnonzero([label_names[label] != silence for label in labels])
    if not len(words):
        raise ValueError(f"no word clips to place: every clip is labelled {silence!r}")

    rng = np.random.default_rng(seed)
    total = int(round(duration_s * sample_rate))
    margin = int(WORD_MARGIN_S * sample_rate)
    fade_ramp = np.sin(np.linspace(0.0, np.pi / 2, max(1, int(WORD_FADE_S * sample_rate)))) ** 2
    recording = np.zeros(total, np.float32)
    events, speech_energy, speech_samples = [], 0.0, 0
    extents: dict[int, tuple[int, int]] = {}
    order: list[int] = []
    empty_streak = 0
    start = int(round(rng.uniform(low, high) * sample_rate))
    while True:
        if not order:
            order = list(rng.permutation(words))
        index = int(order.pop())
        if index not in extents:
            extents[index] = speech_extent(audio[index], sample_rate)
        first, end = extents[index]
        if end <= first:  # a silent clip: nothing to place
            empty_streak += 1
            if empty_streak > len(words):
                raise ValueError("every word clip is silent (no speech found by energy)")
            continue
        empty_streak = 0
        clip = audio[index]
        piece_first, piece_end = max(0, first - margin), min(len(clip), end + margin)
        start = max(start, first - piece_first)  # the first word's margin must fit
        if start + (piece_end - first) > total:
            break
        piece = clip[piece_first:piece_end].copy()
        fade = min(len(fade_ramp), len(piece) // 2)
        piece[:fade] *= fade_ramp[:fade]
        piece[len(piece) - fade:] *= fade_ramp[:fade][::-1]
        offset = start - (first - piece_first)
        recording[offset:offset + len(piece)] += piece
        speech = clip[first:end].astype(np.float64)
        speech_energy += float(np.sum(speech ** 2))
        speech_samples += len(speech)
        word_end = start + (end - first)
        events.append((start / sample_rate, word_end / sample_rate, label_names[labels[index]]))
        start = word_end + int(round(rng.uniform(low, high) * sample_rate))
    if not events:
        raise ValueError(f"duration_s={duration_s} is too short for one word after a gap of "
                         f"{low}-{high} s")
    if noise is not None and noise_level > 0:
        speech_rms = np.sqrt(speech_energy / speech_samples)
        track = _noise_track(_noise_arrays(noise, sample_rate), total, rng,
                             int(NOISE_CROSSFADE_S * sample_rate))
        recording += track * np.float32(noise_level * speech_rms)
    return LongRecording(recording, int(sample_rate), events)
