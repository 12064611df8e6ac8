"""The Speech Commands data set: index a folder, split, label, add silence and unknown, feed
tf.data (decisions: the package docstring, ``kwsnb.data``)."""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import inspect
import logging
import math
import os
import random
import re
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from kwsnb.data.audio import AUDIO_EXTENSIONS, load_clips
from kwsnb.data.augment import BackgroundNoise, augment_audio
from kwsnb.data.tts_unknown import tts_unknown_folder

logger = logging.getLogger("kwsnb.data")

SILENCE_LABEL = "_silence_"
UNKNOWN_WORD_LABEL = "_unknown_"
BACKGROUND_NOISE_DIR_NAME = "_background_noise_"
RANDOM_SEED = 59185
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1  # ~134M, the seed's hash modulus
DEFAULT_WANTED_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SPLITS = ("training", "validation", "testing")
SPLIT_LIST_FILES = {"validation": "validation_list.txt", "testing": "testing_list.txt"}

MAKE_DATA_HINT = (
    "Make a data folder with `python -m data_setup.synthetic --out DIR` (offline TTS set) or "
    "`python -m data_setup.speech_commands --out DIR` (official Speech Commands).")


class MissingDataError(FileNotFoundError):
    """A data folder, or the words asked for, cannot be found; the message says what to run."""


# --------------------------------------------------------------------------------------------
# Indexing a folder
# --------------------------------------------------------------------------------------------

def which_set(filename, validation_percentage: float, testing_percentage: float) -> str:
    """The seed's stable split: 'training', 'validation' or 'testing' from the file name alone.

    Everything after ``_nohash_`` is ignored, so one speaker's clips stay in one partition. As in
    the seed, a name without ``_nohash_`` is hashed whole, extension included.
    """
    base_name = os.path.basename(str(filename))
    hash_name = re.sub(r"_nohash_.*$", "", base_name)
    hash_name_hashed = hashlib.sha1(hash_name.encode("utf-8")).hexdigest()
    percentage_hash = ((int(hash_name_hashed, 16) % (MAX_NUM_WAVS_PER_CLASS + 1))
                       * (100.0 / MAX_NUM_WAVS_PER_CLASS))
    if percentage_hash < validation_percentage:
        return "validation"
    if percentage_hash < testing_percentage + validation_percentage:
        return "testing"
    return "training"


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith(".")
                  and p.is_file())


@dataclasses.dataclass(frozen=True)
class DataFolder:
    """What a Speech Commands-layout folder holds (see :func:`scan_folder`)."""

    root: Path
    words: dict[str, tuple[Path, ...]]  # word (lower case) -> its audio files, sorted
    noise_files: tuple[Path, ...]
    split_lists: dict[str, frozenset[str]]  # 'validation'/'testing' -> {"word/stem", ...}
    special_folders: tuple[str, ...]  # _silence_/_unknown_ folders (test-set layout)

    @property
    def num_clips(self) -> int:
        return sum(len(files) for files in self.words.values())

    def __repr__(self) -> str:
        return (f"DataFolder({str(self.root)!r}: {self.num_clips:,} clips in {len(self.words)} "
                f"word folders, {len(self.noise_files)} noise files)")


def _check_folder(folder: Path, what: str) -> None:
    if not folder.exists():
        raise MissingDataError(f"{what} {folder} does not exist. {MAKE_DATA_HINT}")
    if not folder.is_dir():
        raise MissingDataError(f"{what} {folder} is not a folder. {MAKE_DATA_HINT}")


def _read_split_list(path: Path) -> frozenset[str]:
    if not path.is_file():
        return frozenset()
    entries = set()
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            word, _, name = line.replace("\\", "/").rpartition("/")
            entries.add(f"{word.lower()}/{os.path.splitext(name)[0]}")
    return frozenset(entries)


def scan_folder(data_dir) -> DataFolder:
    """Indexes a Speech Commands-layout folder: word folders, noise files and split lists.

    Raises :class:`MissingDataError` when the folder is missing or holds no audio in word folders.
    """
    root = Path(data_dir).expanduser()
    _check_folder(root, "Data folder")
    words, special = {}, []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        name = sub.name.lower()
        if name == BACKGROUND_NOISE_DIR_NAME:
            continue
        files = _audio_files(sub)
        if name in (SILENCE_LABEL, UNKNOWN_WORD_LABEL):
            special.append(name)
        elif files:
            words[name] = tuple(sorted(words.get(name, ()) + tuple(files)))
    noise_dir = root / BACKGROUND_NOISE_DIR_NAME
    noise_files = tuple(_audio_files(noise_dir)) if noise_dir.is_dir() else ()
    if not words and not special:
        raise MissingDataError(
            f"No audio clips ({', '.join('*' + e for e in AUDIO_EXTENSIONS)}) found in word "
            f"folders under {root} (looked for {root}/<word>/*.wav|*.flac). {MAKE_DATA_HINT}")
    return DataFolder(root, words, noise_files,
                      {split: _read_split_list(root / name)
                       for split, name in SPLIT_LIST_FILES.items()},
                      tuple(special))


# --------------------------------------------------------------------------------------------
# The data set
# --------------------------------------------------------------------------------------------

def _word_list(words) -> list[str]:
    if isinstance(words, str):
        words = words.split(",")
    return [w.strip().lower() for w in words if w.strip()]


class SpeechCommands:
    """A Speech Commands-layout folder, indexed, split, labelled and decoded into memory.

    Arguments are the seed's flags (see the module docstring for the semantics) plus:
    ``split_by`` ('auto' | 'hash' | 'lists'), ``seed`` (unknown-word choice, shuffling and
    augmentation), ``background_rms`` and ``silence_volume`` (noise levels, default: the seed's),
    ``eval_silence_noise`` (validation/testing silence gets a fixed noise slice at a fixed random
    gain instead of zeros), ``volume_resample`` (seed flag, default 0),
    ``extra_unknown_dir`` / ``extra_unknown_percentage`` (more ``_unknown_`` training examples from
    another Speech Commands-layout folder, e.g. ``python -m data_setup.synthetic --words common``:
    ceil(pct% x training keyword clips) of its training clips, drawn at random, its folders of
    wanted words skipped; training split only, so validation and testing stay the real data's),
    ``tts_unknown_words`` (instead: TTS speech of these non-keywords, ``kwsnb.data.tts_unknown``),
    ``unknown_with_replacement`` (when the training split has fewer unknown-word clips than
    ``unknown_percentage`` asks for, repeat them until it has that many: each repeat is augmented
    afresh; the seed takes each clip at most once), ``stream_window_percentage`` (that share of
    each augmented training batch is windows cut at random offsets from streams of training
    words, labelled by what speech they hold: ``kwsnb.data.stream_windows``), and loading options ``progress``,
    ``cache``, ``cache_dir``, ``num_workers``.

    Use :meth:`dataset` for ``tf.data`` batches of (audio float32 [B, N], label int32 [B]) and
    :meth:`arrays` for a whole split as numpy.
    """

    def __init__(self, data_dir, wanted_words=DEFAULT_WANTED_WORDS, *,
                 silence_percentage: float = 10.0, unknown_percentage: float = 10.0,
                 validation_percentage: float = 10.0, testing_percentage: float = 10.0,
                 time_shift_ms: float = 100.0, resample: float = 0.15,
                 volume_resample: float = 0.0, background_frequency: float = 0.8,
                 background_volume: float = 0.1, clip_duration_ms: float = 1000,
                 sample_rate: int = 16000, split_by: str = "auto", seed: int = RANDOM_SEED,
                 background_rms: float | None = None, silence_volume: float | None = None,
                 eval_silence_noise: bool = False, extra_unknown_dir: str | Path | None = None,
                 extra_unknown_percentage: float = 0.0, tts_unknown_words: str = "",
                 unknown_with_replacement: bool = False, stream_window_percentage: float = 0.0,
                 progress: bool = True, cache: bool = True, cache_dir: str | Path | None = None,
                 num_workers: int | None = None):
        if split_by not in ("auto", "hash", "lists"):
            raise ValueError(f"split_by must be 'auto', 'hash' or 'lists', not {split_by!r}")
        # Shares of the keyword examples (may exceed 100) and shares of the speakers (may not).
        shares = {"silence_percentage": silence_percentage, "unknown_percentage": unknown_percentage,
                  "extra_unknown_percentage": extra_unknown_percentage}
        splits = {"validation_percentage": validation_percentage,
                  "testing_percentage": testing_percentage}
        wrong = [f"{name}={value}" for name, value in shares.items() if float(value) < 0]
        wrong += [f"{name}={value}" for name, value in splits.items()
                  if not 0 <= float(value) <= 100]
        if not wrong and validation_percentage + testing_percentage > 100:
            wrong = [f"validation_percentage + testing_percentage = "
                     f"{validation_percentage + testing_percentage}"]
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: validation and testing percentages must lie in "
                             "0-100 together, the others must be 0 or more")
        self.folder = scan_folder(data_dir)
        self.data_dir = self.folder.root
        if self.folder.special_folders:
            raise MissingDataError(
                f"{self.data_dir} holds {', '.join(self.folder.special_folders)} folders: that is "
                f"the official test-set layout. Read it with kwsnb.data.read_test_folder(...) and "
                f"give SpeechCommands a training folder (word folders + _background_noise_).")
        self.wanted_words = _word_list(wanted_words)
        if not self.wanted_words:
            raise ValueError("wanted_words is empty; give a comma-separated word list, e.g. "
                             f"{','.join(DEFAULT_WANTED_WORDS)}")
        repeated = sorted({w for w in self.wanted_words if self.wanted_words.count(w) > 1})
        if repeated:
            raise ValueError(f"wanted_words lists {', '.join(repeated)} more than once")
        missing = [w for w in self.wanted_words if w not in self.folder.words]
        if missing:
            raise MissingDataError(
                f"No folder with audio clips for wanted word(s) {', '.join(missing)} in "
                f"{self.data_dir} (looked for {self.data_dir}/<word>/*.wav|*.flac; found "
                f"{', '.join(sorted(self.folder.words)) or 'no word folders'}). Check "
                f"wanted_words, or make data with those words. {MAKE_DATA_HINT}")

        self.sample_rate = int(sample_rate)
        self.clip_samples = int(round(self.sample_rate * clip_duration_ms / 1000))
        self.time_shift_samples = int(time_shift_ms * self.sample_rate / 1000)  # the seed's int()
        self.silence_percentage = float(silence_percentage)
        self.unknown_percentage = float(unknown_percentage)
        self.validation_percentage = float(validation_percentage)
        self.testing_percentage = float(testing_percentage)
        self.resample = float(resample)
        self.volume_resample = float(volume_resample)
        self.background_frequency = float(background_frequency)
        self.background_volume = float(background_volume)
        self.background_rms = background_rms
        self.silence_volume = silence_volume
        self.seed = int(seed)
        self.unknown_with_replacement = bool(unknown_with_replacement)
        if not 0 <= float(stream_window_percentage) < 100:
            raise ValueError(f"stream_window_percentage must be in [0, 100), got "
                             f"{stream_window_percentage}")
        self.stream_window_percentage = float(stream_window_percentage)

        with_specials = self.silence_percentage > 0 or self.unknown_percentage > 0
        self.labels = ([SILENCE_LABEL, UNKNOWN_WORD_LABEL] if with_specials else []) + \
            self.wanted_words
        self._silence_index = 0 if with_specials else -1

        has_lists = any(self.folder.split_lists.values())
        if split_by == "auto":
            split_by = "lists" if has_lists else "hash"
        elif split_by == "lists" and not has_lists:
            raise MissingDataError(
                f"split_by='lists' but {self.data_dir} has no non-empty validation_list.txt or "
                f"testing_list.txt; use split_by='hash' (the seed's speaker hash).")
        self.split_by = split_by
        if split_by == "lists":
            self._warn_unmatched_lists()
        if with_specials and self.unknown_percentage > 0 and \
                set(self.folder.words) <= set(self.wanted_words):
            warnings.warn(f"every word folder in {self.data_dir} is a wanted word, so _unknown_ has "
                          f"no examples; set unknown_percentage=0 (and silence_percentage=0 for "
                          f"labels that are just the words).", stacklevel=2)

        paths, index = self._build_index()
        noise_needed = self.background_frequency > 0 or eval_silence_noise
        self.noise = (BackgroundNoise.from_files(self.folder.noise_files, self.sample_rate,
                                                 self.clip_samples, background_rms)
                      if noise_needed else None)
        if noise_needed and not (self.noise and len(self.noise)):
            warnings.warn(f"no usable background noise in {self.data_dir / BACKGROUND_NOISE_DIR_NAME}"
                          f": noise mixing is off and silence examples are all zeros.",
                          stacklevel=2)
        eval_silence = {split: sum(1 for row in index[split] if row[0] < 0)
                        for split in ("validation", "testing")} if eval_silence_noise else {}
        extra = 1 + sum(eval_silence.values())  # one zero row for silence, then eval noise rows
        self._clips, ok = load_clips(paths, self.data_dir, sample_rate=self.sample_rate,
                                     clip_samples=self.clip_samples, extra_rows=extra,
                                     progress=progress, cache=cache, cache_dir=cache_dir,
                                     num_workers=num_workers)
        self._rows, self._label_ids = {}, {}
        next_row = len(paths) + 1
        for split in SPLITS:
            entries = [(row, label) for row, label in index[split] if row < 0 or ok[row]]
            rows = np.array([row for row, _ in entries], np.int64).reshape(-1)
            silence_rows = np.flatnonzero(rows < 0)
            rows[silence_rows] = len(paths)  # the zero row
            if eval_silence.get(split) and self.noise is not None and len(self.noise):
                rows[silence_rows] = next_row + np.arange(len(silence_rows))
                self._clips[rows[silence_rows]] = self._fixed_noise_clips(split, len(silence_rows))
                next_row += len(silence_rows)
            self._rows[split] = rows
            self._label_ids[split] = np.array([label for _, label in entries], np.int32)
        self.extra_unknown_dir = None
        self.extra_unknown_percentage = float(extra_unknown_percentage)
        if tts_unknown_words:
            if extra_unknown_dir:
                raise ValueError("tts_unknown_words and extra_unknown_dir both name the extra "
                                 "_unknown_ clips: give one of them")
            if self.extra_unknown_percentage <= 0:
                raise ValueError(f"tts_unknown_words {tts_unknown_words!r} needs "
                                 "extra_unknown_percentage above 0 (how many of its clips to add)")
            extra_unknown_dir = tts_unknown_folder(tts_unknown_words, self.wanted_words,
                                                   progress=progress)
        if extra_unknown_dir and self.extra_unknown_percentage > 0:
            self._add_extra_unknown(Path(extra_unknown_dir), progress=progress, cache=cache,
                                    cache_dir=cache_dir, num_workers=num_workers)

    # -- index ---------------------------------------------------------------------------------
    def _build_index(self):
        """The seed's prepare_data_index: (files to decode, {split: [(row, label_id)]}).

        Row -1 marks a silence entry. Unknown picks and the final order follow the seed's calls
        to ``random`` with seed ``self.seed``.
        """
        rng = random.Random(self.seed)
        word_ids = {word: i for i, word in enumerate(self.labels)}
        known = {split: [] for split in SPLITS}
        unknown = {split: [] for split in SPLITS}
        for word, files in sorted(self.folder.words.items()):
            for path in files:
                split = self._split_of(word, path)
                (known if word in word_ids else unknown)[split].append((path, word))
        entries = {split: [(path, word_ids[word]) for path, word in known[split]]
                   for split in SPLITS}
        with_specials = self._silence_index == 0
        for split in ("validation", "testing", "training"):  # the seed's order of random calls
            set_size = len(known[split])
            if with_specials:
                silence_size = int(math.ceil(set_size * self.silence_percentage / 100))
                entries[split] += [(None, word_ids[SILENCE_LABEL])] * silence_size
                rng.shuffle(unknown[split])
                unknown_size = int(math.ceil(set_size * self.unknown_percentage / 100))
                picked = unknown[split][:unknown_size]
                if split == "training" and self.unknown_with_replacement and picked:
                    # Cycle through the shuffled pool: every clip is used equally often.
                    picked = [picked[i % len(picked)] for i in range(unknown_size)]
                entries[split] += [(path, word_ids[UNKNOWN_WORD_LABEL]) for path, _ in picked]
        for split in ("validation", "testing", "training"):
            rng.shuffle(entries[split])
        paths = sorted({path for split in SPLITS for path, _ in entries[split] if path})
        row_of = {path: row for row, path in enumerate(paths)}
        index = {split: [(row_of[path] if path else -1, label) for path, label in entries[split]]
                 for split in SPLITS}
        return paths, index

    def _add_extra_unknown(self, folder: Path, **loading) -> None:
        """Appends ceil(extra_unknown_percentage% x training keyword clips) clips of ``folder``'s
        training split to the training split as ``_unknown_``."""
        if self._silence_index != 0 or self.unknown_percentage <= 0:
            raise ValueError("extra_unknown_dir needs an _unknown_ label: set unknown_percentage "
                             "above 0 (it is 0, so the labels are just the words)")
        extra = scan_folder(folder)
        keywords = sorted(set(extra.words) & set(self.wanted_words))
        if keywords:  # a keyword's clips must never be labelled _unknown_
            logger.info("extra_unknown_dir %s: skipping the folders of the keywords %s",
                        extra.root, ", ".join(keywords))
        if not set(extra.words) - set(keywords):
            raise ValueError(
                f"extra_unknown_dir {extra.root} has no word folders other than the keywords "
                f"({', '.join(keywords) or 'none'}): give a folder of non-keywords, e.g. "
                f"python -m data_setup.synthetic --words common")
        lists = extra.split_lists
        held_out = lists["validation"] | lists["testing"]
        candidates = [path for word, files in sorted(extra.words.items()) if word not in keywords
                      for path in files if f"{word}/{path.stem}" not in held_out]
        known = int(np.sum(self._label_ids["training"] > 1))  # 0, 1: silence, unknown
        count = min(len(candidates), int(math.ceil(known * self.extra_unknown_percentage / 100)))
        if count < known * self.extra_unknown_percentage / 100:
            warnings.warn(f"extra_unknown_dir {extra.root} has {len(candidates)} training clips, "
                          f"fewer than the {self.extra_unknown_percentage:g}% of {known} keyword "
                          f"clips asked for; all of them are used", stacklevel=3)
        chosen = sorted(random.Random(self.seed + 1).sample(candidates, count))
        clips, ok = load_clips(chosen, extra.root, sample_rate=self.sample_rate,
                               clip_samples=self.clip_samples, **loading)
        first = len(self._clips)
        self._clips = np.concatenate([self._clips, clips[ok]])
        rows = np.arange(first, len(self._clips), dtype=np.int64)
        self._rows["training"] = np.concatenate([self._rows["training"], rows])
        self._label_ids["training"] = np.concatenate(
            [self._label_ids["training"], np.full(len(rows), 1, np.int32)])  # _unknown_
        self.extra_unknown_dir = extra.root

    def _warn_unmatched_lists(self) -> None:
        """A list entry without its clip (a list of another folder, a renamed file) is named:
        the split would otherwise be silently smaller, or empty."""
        clips = {f"{word}/{path.stem}" for word, paths in self.folder.words.items()
                 for path in paths}
        for split, entries in self.folder.split_lists.items():
            missing = sorted(entries - clips)
            if missing:
                shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more"
                                                  if len(missing) > 3 else "")
                warnings.warn(f"{self.data_dir / SPLIT_LIST_FILES[split]} names {len(missing)} of "
                              f"its {len(entries)} clips that are not in {self.data_dir} "
                              f"({shown}); they are left out of the {split} split. Check that "
                              "the list belongs to this folder", stacklevel=3)

    def _split_of(self, word: str, path: Path) -> str:
        if self.split_by == "hash":
            return which_set(path.name, self.validation_percentage, self.testing_percentage)
        key = f"{word}/{path.stem}"
        for split in ("validation", "testing"):
            if key in self.folder.split_lists[split]:
                return split
        return "training"

    def _fixed_noise_clips(self, split: str, count: int) -> np.ndarray:
        """Deterministic noise-only clips for validation/testing silence (eval_silence_noise)."""
        rng = np.random.default_rng([self.seed, SPLITS.index(split)])
        top = self.background_volume if self.silence_volume is None else self.silence_volume
        clips = np.empty((count, self.clip_samples), np.int16)
        for i in range(count):
            which = rng.integers(len(self.noise))
            start = self.noise.starts[which] + rng.integers(self.noise.lengths[which]
                                                            - self.clip_samples)
            clip = self.noise.samples[start:start + self.clip_samples] * rng.uniform(0, top)
            clips[i] = np.round(np.clip(clip, -1, 32767 / 32768) * 32768).astype(np.int16)
        return clips

    # -- summaries -----------------------------------------------------------------------------
    @property
    def split_sizes(self) -> dict[str, int]:
        """Number of examples (words, silence, unknown) per split."""
        return {split: len(self._rows[split]) for split in SPLITS}

    @property
    def label_counts(self) -> dict[str, dict[str, int]]:
        """{split: {label: examples}} for every label (0 where a split has none)."""
        result = {}
        for split in SPLITS:
            counts = np.bincount(self._label_ids[split], minlength=len(self.labels))
            result[split] = dict(zip(self.labels, map(int, counts)))
        return result

    def __repr__(self) -> str:
        sizes = " / ".join(f"{split} {n:,}" for split, n in self.split_sizes.items())
        return (f"SpeechCommands({str(self.data_dir)!r}, {len(self.labels)} labels, "
                f"split_by={self.split_by!r}: {sizes} examples)")

    # -- data ----------------------------------------------------------------------------------
    def _check_split(self, split: str) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
        if not len(self._rows[split]):
            how = ("testing_list.txt/validation_list.txt list no clips for it" if
                   self.split_by == "lists" else f"{split}_percentage gives it no speakers")
            raise ValueError(
                f"the {split} split of {self.data_dir} is empty (split_by={self.split_by!r}: "
                f"{how}). For a separate test folder use kwsnb.data.read_test_folder(...).")

    def arrays(self, split: str):
        """The whole split, unaugmented: (audio float32 [n, N], labels int32 [n]), index order."""
        self._check_split(split)
        audio = self._clips[self._rows[split]].astype(np.float32) / 32768.0
        return audio, self._label_ids[split].copy()

    def dataset(self, split: str, batch_size: int = 100, augment: bool | None = None,
                shuffle: bool | None = None, repeat: bool | None = None,
                seed: int | None = None):
        """``tf.data.Dataset`` of (audio float32 [B, N], label int32 [B]) batches.

        Defaults depend on the split: training is augmented, shuffled and repeated forever;
        validation/testing are one pass in index order, unaugmented. ``seed`` (default: the
        object's) fixes shuffling and augmentation.
        """
        self._check_split(split)
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        training = split == "training"
        augment = training if augment is None else augment
        shuffle = training if shuffle is None else shuffle
        repeat = training if repeat is None else repeat
        seed = self.seed if seed is None else int(seed)
        clips = self._clips
        clip_samples = self.clip_samples
        silence_index = self._silence_index

        def gather(rows):  # numpy fancy indexing: no copy of the clip store into the graph
            return clips[rows]

        augment_options = dict(
            resample=self.resample, volume_resample=self.volume_resample,
            time_shift_samples=self.time_shift_samples,
            background_frequency=self.background_frequency,
            background_volume=self.background_volume, silence_volume=self.silence_volume)

        def load(step, rows, labels):
            audio = tf.numpy_function(gather, [rows], tf.int16, stateful=False)
            audio = tf.ensure_shape(audio, [None, clip_samples])
            if augment:
                return augment_audio(audio, tf.equal(labels, silence_index), self.noise,
                                     tf.stack([tf.constant(seed, tf.int64), step]),
                                     jit_compile=True, **augment_options), labels
            return tf.cast(audio, tf.float32) / 32768.0, labels

        windows = (round(batch_size * self.stream_window_percentage / 100)
                   if training and augment and self.stream_window_percentage > 0 else 0)
        batch_size -= windows
        rows, label_ids = self._rows[split], self._label_ids[split]
        if shuffle:
            data = _shuffled_passes(rows, label_ids, seed, repeat)
        else:
            data = tf.data.Dataset.from_tensor_slices((rows, label_ids))
            if repeat:
                data = data.repeat()
        data = data.batch(batch_size).enumerate()
        data = data.map(lambda step, batch: load(step, *batch),
                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if windows:
            from kwsnb.data import stream_windows

            source = stream_windows.StreamWindows(
                clips, rows, label_ids, range(2 if silence_index == 0 else 0, len(self.labels)),
                silence_id=silence_index, unknown_id=1, sample_rate=self.sample_rate, seed=seed)
            data = stream_windows.mix_batches(data, source.dataset(windows, self.noise,
                                                                   augment_options))
        return data.prefetch(tf.data.AUTOTUNE)

    @classmethod
    def from_flags(cls, flags, **overrides) -> "SpeechCommands":
        """Builds from a flags mapping or ``argparse.Namespace`` with the seed's flag names.

        Keys that are not arguments of :class:`SpeechCommands` (model and training flags) are
        ignored; ``overrides`` win over ``flags``.
        """
        values = dict(vars(flags) if isinstance(flags, argparse.Namespace) else flags)
        values.update(overrides)
        if not values.get("data_dir"):
            raise ValueError("flags have no data_dir: give the folder with the word folders. "
                             + MAKE_DATA_HINT)
        accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
        return cls(**{k: v for k, v in values.items() if k in accepted})


def _shuffled_passes(rows, label_ids, seed: int, repeat: bool):
    """(row, label) examples, each pass over the split in its own order, fixed by ``seed`` and
    the pass number alone (stateless): every iterator of the data set sees the same order. A
    seeded ``Dataset.shuffle`` reshuffles for each new iterator, so a second iterator (Keras'
    fit makes one under a ``tf.distribute`` strategy) would not start with the first batch."""
    rows = tf.constant(rows)
    label_ids = tf.constant(label_ids)
    count = int(rows.shape[0])

    def one_pass(number):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count), seed=tf.stack([tf.constant(seed, tf.int64), number]))
        return tf.data.Dataset.from_tensor_slices((tf.gather(rows, order),
                                                   tf.gather(label_ids, order)))

    passes = tf.data.Dataset.counter() if repeat else tf.data.Dataset.range(1)
    return passes.flat_map(one_pass)


DEFAULT_FLAGS = {name: p.default for name, p in
                 inspect.signature(SpeechCommands.__init__).parameters.items()
                 if p.default is not inspect.Parameter.empty}
"""The data flags and their defaults (seed names), for CLIs and notebooks."""


def read_test_folder(test_dir, labels: Sequence[str], exclude: Iterable[str] = (), *,
                     sample_rate: int = 16000, clip_samples: int = 16000, progress: bool = True,
                     cache: bool = True, cache_dir: str | Path | None = None):
    """Reads a folder in the official test-set layout as (audio float32 [n, N], labels int32 [n]).

    The layout is one folder per label: ``_silence_/``, ``_unknown_/`` and one per word, as in
    speech_commands_test_set_v0.02. Each folder's clips get the index of its name in ``labels``.
    A folder whose name is not in ``labels`` is an error unless it is in ``exclude`` (e.g.
    ``exclude=("go", "on", "off")`` for SC-lite-9). Clips are sorted by folder then file name.
    """
    root = Path(test_dir).expanduser()
    _check_folder(root, "Test folder")
    label_ids = {label: i for i, label in enumerate(labels)}
    exclude = {name.lower() for name in exclude}
    folders = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = _audio_files(sub)
        if files and sub.name.lower() != BACKGROUND_NOISE_DIR_NAME:
            folders[sub.name.lower()] = files
    if not folders:
        raise MissingDataError(
            f"No audio clips in label folders under {root}: expected the official test-set "
            f"layout ({root}/_silence_/, {root}/_unknown_/, {root}/<word>/ with *.wav|*.flac).")
    foreign = sorted(set(folders) - set(label_ids) - exclude)
    if foreign:
        raise ValueError(
            f"test folder {root} has folders that are not labels of the model: "
            f"{', '.join(foreign)} (labels: {', '.join(labels)}). Pass "
            f"exclude={tuple(foreign)!r} to leave them out.")
    paths, label_list = [], []
    for name, files in folders.items():
        if name in exclude:
            continue
        paths += files
        label_list += [label_ids[name]] * len(files)
    clips, ok = load_clips(paths, root, sample_rate=sample_rate, clip_samples=clip_samples,
                           progress=progress, cache=cache, cache_dir=cache_dir)
    audio = clips[ok].astype(np.float32) / 32768.0
    return audio, np.array(label_list, np.int32)[ok]
