"""Speech Commands data: index a folder, split, label, load, augment and feed tf.data.

The semantics follow kws_streaming's ``data/input_data.py`` (the "seed"); flag names and
defaults are the seed's (``data_dir``, ``wanted_words``, ``silence_percentage``, ...).

Folder layout read by :class:`SpeechCommands` (what ``python -m data_setup.speech_commands`` and
``python -m data_setup.synthetic`` write)::

    DATA_DIR/<word>/*.wav|*.flac        one folder per word (names are lower-cased, as the seed)
    DATA_DIR/_background_noise_/*.wav   long noise recordings for mixing and for silence
    DATA_DIR/validation_list.txt        optional, "word/file.wav" per line
    DATA_DIR/testing_list.txt           optional

Decisions (where the seed leaves room or where kwsnb differs on purpose):

* Labels are ``_silence_, _unknown_`` + ``wanted_words`` in that order (the seed's order). When
  both ``silence_percentage`` and ``unknown_percentage`` are 0 the two special labels are left
  out, so ``wanted_words=<all 35 words>, silence_percentage=0, unknown_percentage=0`` gives the
  35-label task with exactly the 35 words as labels (what the seed's ``--split_data 0`` recipes
  train).
* ``split_by='hash'`` is the seed's :func:`which_set` (SHA-1 of the file name up to
  ``_nohash_``, i.e. by speaker). ``split_by='lists'`` reads validation_list.txt/testing_list.txt
  (matched by ``word/stem`` so .flac copies of listed .wav files match); everything else is
  training. The default ``'auto'`` uses the lists when either file lists any clip and the hash
  otherwise. Both split by speaker; a subset such as speech_commands_lite is cut by its lists
  (its 675 listed clips all hash to validation too, but so do 119 unlisted ones, and its
  testing list is empty because its test clips live in a separate folder).
* Silence and unknown entries are added per partition exactly as the seed does: ceil(pct% x
  known-word clips) each, unknowns drawn with ``random.Random(59185)`` in the seed's call order.
  Only the clips the index uses are decoded (the 12-label task needs ~40% of V2's clips).
* Training samples are shuffled epoch by epoch (``tf.data`` ``shuffle`` + ``repeat``); the seed
  drew each batch with replacement. Validation/testing keep the index order, unaugmented; their
  silence is all zeros as in the seed, unless ``eval_silence_noise=True``.
* Augmentation (training only, seed order): stretch x U(1-resample, 1+resample) with bilinear
  resize and centre crop/pad, volume x U(1-volume_resample, 1+volume_resample), shift by
  U[-shift, shift) samples zero-filled, then with probability background_frequency add a
  random one-clip slice of a random noise file at gain U(0, background_volume), clip to +-1.
  Silence is noise only. It runs as TF ops on whole batches inside ``tf.data``, compiled with
  XLA (~9x faster than op by op on CPU, so the pipeline leaves the cores to the model), with
  stateless random numbers: a seed reproduces it exactly. Clips reach the pipeline through
  ``tf.numpy_function`` (a gather from the in-memory array), so the clips are never copied into
  a graph; such a pipeline cannot be serialized (tf.data service), which kwsnb does not need.
* Noise level flags beyond the seed (defaults keep the seed's behaviour): the official noise files
  are quiet (RMS 0.003-0.006) while the test set's _silence_ clips are much louder (median RMS
  ~0.02), so ``background_rms`` rescales every noise file to that RMS before mixing and
  ``silence_volume`` sets the gain range for silence examples separately from
  ``background_volume``.
* Clips are stored in memory once, as int16 ``[clips, samples]`` (105k V2 clips ~ 3.4 GB) and
  decoded by a thread pool. The decoded array is cached as ``.npy`` under ``cache_dir``
  (default ``$KWSNB_CACHE_DIR`` or ``~/.cache/kwsnb/clips``), keyed by the folder, the sample
  rate and clip length, and the path, size and mtime of every file it holds: a changed, added or
  removed file gives a new key, so a stale cache is never read.
* Bad audio files never stop a run: unreadable and empty files are skipped, stereo files are
  downmixed, other sample rates are resampled (soxr), files longer than a clip are cropped to
  their start (as the seed's decoder does), and each of these is reported in one summary warning
  (:class:`AudioFileWarning`) that names the first few files. Clips shorter than a clip are
  zero-padded at the end silently: that is the seed's behaviour and ~10% of Speech Commands clips
  are shorter than 1 s.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import inspect
import json
import logging
import math
import os
import random
import re
import tempfile
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile
import tensorflow as tf
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

SILENCE_LABEL = "_silence_"
UNKNOWN_WORD_LABEL = "_unknown_"
BACKGROUND_NOISE_DIR_NAME = "_background_noise_"
RANDOM_SEED = 59185
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1  # ~134M, the seed's hash modulus
DEFAULT_WANTED_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
AUDIO_EXTENSIONS = (".wav", ".flac")
SPLITS = ("training", "validation", "testing")
SPLIT_LIST_FILES = {"validation": "validation_list.txt", "testing": "testing_list.txt"}

MAKE_DATA_HINT = (
    "Make a data folder with `python -m data_setup.synthetic --out DIR` (offline TTS set) or "
    "`python -m data_setup.speech_commands --out DIR` (official Speech Commands).")

# SpecAugment flags as the seed names them; off by default and in every 30k recipe.
SPEC_AUGMENT_DEFAULTS = {
    "use_spec_augment": 0,
    "time_masks_number": 2,
    "time_mask_max_size": 10,
    "frequency_masks_number": 2,
    "frequency_mask_max_size": 5,
}

_CACHE_FORMAT = 1


class MissingDataError(FileNotFoundError):
    """A data folder, or the words asked for, cannot be found; the message says what to run."""


class AudioFileWarning(UserWarning):
    """Some audio files were skipped or fixed while loading; the message names them."""


# --------------------------------------------------------------------------------------------
# Reading audio files
# --------------------------------------------------------------------------------------------

# Issue kinds, in the order the summary lists them. "skip" kinds lose the file.
_ISSUE_TEXT = {
    "unreadable": "skipped as unreadable",
    "empty": "skipped as empty",
    "downmixed": "downmixed to mono",
    "resampled": "resampled",
    "cropped": "cropped to the clip length",
}
_SKIP_ISSUES = {"unreadable", "empty"}


def _read_int16(path: Path, sample_rate: int, clip_samples: int | None):
    """Decodes one file to mono int16 at ``sample_rate``, padded/cropped to ``clip_samples``.

    Returns ``(samples or None, [(issue, detail), ...])``; ``None`` means the file is skipped.
    """
    issues = []
    try:
        if path.stat().st_size == 0:
            return None, [("empty", "0 bytes")]
        audio, file_rate = soundfile.read(path, dtype="int16", always_2d=True)
    except Exception as error:  # any decoder failure means "skip this file", never stop the run
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return None, [("unreadable", detail)]
    if audio.shape[0] == 0:
        return None, [("empty", "0 samples")]
    if audio.shape[1] > 1:
        issues.append(("downmixed", f"{audio.shape[1]} channels"))
        audio = np.round(audio.mean(axis=1, dtype=np.float32)).astype(np.int16)
    else:
        audio = audio[:, 0]
    if file_rate != sample_rate:
        import soxr  # only needed for the rare wrong-rate file

        issues.append(("resampled", f"{file_rate} Hz -> {sample_rate} Hz"))
        resampled = soxr.resample(audio.astype(np.float32), file_rate, sample_rate, quality="HQ")
        audio = np.clip(np.round(resampled), -32768, 32767).astype(np.int16)
    if clip_samples is not None:
        if len(audio) > clip_samples:
            issues.append(("cropped", f"{len(audio)} -> {clip_samples} samples"))
            audio = audio[:clip_samples]
        elif len(audio) < clip_samples:  # the seed's decoder pads the end with zeros, silently
            audio = np.pad(audio, (0, clip_samples - len(audio)))
    return audio, issues


def _warn_issues(issues: list[tuple[str, str, str]], total: int, where: str, cached: bool = False):
    """One warning summarising every skipped or fixed file: counts per kind + first names."""
    if not issues:
        return
    by_kind = defaultdict(list)
    for kind, name, detail in issues:
        by_kind[kind].append(f"{name} ({detail})")
    parts = []
    for kind, text in _ISSUE_TEXT.items():
        names = by_kind.get(kind)
        if names:
            shown = ", ".join(names[:3]) + (f", and {len(names) - 3} more" if len(names) > 3 else "")
            parts.append(f"{len(names)} {text}: {shown}")
    files = len({name for _, name, _ in issues})
    lost = len({name for kind, name, _ in issues if kind in _SKIP_ISSUES})
    warnings.warn(
        f"{files} of {total:,} audio files in {where} needed attention"
        f"{' (as found when the cached copy was made)' if cached else ''}; "
        + "; ".join(parts)
        + f". {'The skipped files are left out; ' if lost else ''}all other files loaded.",
        AudioFileWarning, stacklevel=3)


def load_clip(path, sample_rate: int = 16000, clip_samples: int | None = 16000):
    """Reads one audio file (wav, flac, anything libsndfile opens) as float32 in [-1, 1).

    Stereo is downmixed, another sample rate is resampled, a longer file is cropped to its first
    ``clip_samples`` (each with an :class:`AudioFileWarning` naming the file); a shorter file is
    zero-padded at the end. ``clip_samples=None`` keeps the whole file. Returns ``None`` (after
    a warning naming the file) when the file is unreadable or empty.
    """
    path = Path(path)
    audio, issues = _read_int16(path, sample_rate, clip_samples)
    _warn_issues([(kind, str(path), detail) for kind, detail in issues], 1, str(path.parent))
    if audio is None:
        return None
    return audio.astype(np.float32) / 32768.0


def default_cache_dir() -> Path:
    """``$KWSNB_CACHE_DIR``, else ``$XDG_CACHE_HOME/kwsnb/clips``, else ``~/.cache/kwsnb/clips``."""
    if os.environ.get("KWSNB_CACHE_DIR"):
        return Path(os.environ["KWSNB_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "kwsnb" / "clips"


def _cache_key(root: Path, paths: Sequence[Path], sample_rate: int, clip_samples: int) -> str:
    digest = hashlib.sha1()
    digest.update(f"{_CACHE_FORMAT}|{root.resolve()}|{sample_rate}|{clip_samples}".encode())
    for path in paths:
        try:
            stat = path.stat()
            digest.update(f"|{path.relative_to(root)}|{stat.st_size}|{stat.st_mtime_ns}".encode())
        except OSError:  # vanished file: still part of the key, and the loader will report it
            digest.update(f"|{path}|missing".encode())
    return digest.hexdigest()


def _read_cache(cache_dir: Path, key: str, rows: int, clip_samples: int, extra_rows: int):
    meta_path = cache_dir / f"{key}.json"
    clips_path = cache_dir / f"{key}.npy"
    if not (meta_path.exists() and clips_path.exists()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        stored = np.load(clips_path, mmap_mode="r")
        if (meta.get("format") != _CACHE_FORMAT or stored.shape != (rows, clip_samples)
                or stored.dtype != np.int16 or len(meta["ok"]) != rows):
            return None
        clips = np.zeros((rows + extra_rows, clip_samples), np.int16)
        clips[:rows] = stored  # straight into the final buffer: no second full-size copy
        ok = np.array([flag == "1" for flag in meta["ok"]], bool)
        return clips, ok, [tuple(issue) for issue in meta["issues"]]
    except (OSError, ValueError, KeyError) as error:
        logger.warning("ignoring unreadable clip cache %s (%s)", clips_path, error)
        return None


def _atomic_write(target: Path, write) -> None:
    """Writes through a temporary file in the same folder, then renames: readers never see a
    half-written file."""
    handle = tempfile.NamedTemporaryFile(dir=target.parent, suffix=".tmp", delete=False)
    try:
        with handle:
            write(handle)
        os.replace(handle.name, target)
    finally:
        if os.path.exists(handle.name):
            os.unlink(handle.name)


def _write_cache(cache_dir: Path, key: str, clips: np.ndarray, ok: np.ndarray, issues) -> None:
    meta = {"format": _CACHE_FORMAT, "ok": "".join("1" if flag else "0" for flag in ok),
            "issues": [list(issue) for issue in issues]}
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(cache_dir / f"{key}.npy", lambda f: np.save(f, clips))
        # The metadata goes last: an entry without it is incomplete and never read.
        _atomic_write(cache_dir / f"{key}.json", lambda f: f.write(json.dumps(meta).encode()))
    except OSError as error:
        logger.warning("could not write clip cache to %s (%s); continuing without it", cache_dir,
                       error)


def load_clips(paths: Sequence[Path], root: Path, *, sample_rate: int = 16000,
               clip_samples: int = 16000, extra_rows: int = 0, progress: bool = True,
               num_workers: int | None = None, cache: bool = True,
               cache_dir: str | Path | None = None):
    """Decodes many files into one int16 array ``[len(paths) + extra_rows, clip_samples]``.

    Returns ``(clips, ok)``: ``ok[i]`` is False for a file that was skipped (its row is zeros).
    ``extra_rows`` zero rows are appended for the caller (silence). Problems are reported in one
    :class:`AudioFileWarning`. With ``cache`` the decoded array is reused across runs (see the
    module docstring for the key).
    """
    paths = [Path(p) for p in paths]
    root = Path(root)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = _cache_key(root, paths, sample_rate, clip_samples) if cache else None
    if cache:
        hit = _read_cache(cache_dir, key, len(paths), clip_samples, extra_rows)
        if hit is not None:
            logger.info("loaded %d clips from cache %s", len(paths), cache_dir / f"{key}.npy")
            clips, ok, issues = hit
            _warn_issues(issues, len(paths), str(root), cached=True)
            return clips, ok

    clips = np.zeros((len(paths) + extra_rows, clip_samples), np.int16)
    ok = np.zeros(len(paths), bool)
    issues = []

    def decode(index):
        audio, file_issues = _read_int16(paths[index], sample_rate, clip_samples)
        if audio is not None:
            clips[index] = audio
            ok[index] = True
        return index, file_issues

    # libsndfile decodes without the GIL, so threads scale with cores (I/O waits overlap too).
    workers = num_workers or min(16, 2 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool, tqdm(
            total=len(paths), desc=f"decoding {root.name}", unit="clip",
            disable=not progress or len(paths) == 0, leave=False) as bar:
        for index, file_issues in pool.map(decode, range(len(paths))):
            for kind, detail in file_issues:
                issues.append((kind, _relative_name(paths[index], root), detail))
            bar.update()
    _warn_issues(issues, len(paths), str(root))
    if cache:
        _write_cache(cache_dir, key, clips[:len(paths)], ok, issues)
    return clips, ok


def _relative_name(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


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
# Augmentation (TF ops on whole batches)
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class BackgroundNoise:
    """Noise recordings concatenated into one float32 array, for slicing inside the graph."""

    samples: np.ndarray  # float32 [total]
    starts: np.ndarray  # int32 [files]
    lengths: np.ndarray  # int32 [files]
    names: tuple[str, ...]

    @classmethod
    def from_arrays(cls, arrays: Sequence[np.ndarray], names: Sequence[str] | None = None,
                    rms: float | None = None) -> "BackgroundNoise":
        """``rms`` rescales each recording to that RMS (None keeps it as recorded)."""
        arrays = [np.asarray(a, np.float32) for a in arrays]
        if rms is not None:
            arrays = [a * (rms / max(float(np.sqrt(np.mean(a.astype(np.float64) ** 2))), 1e-9))
                      for a in arrays]
        lengths = np.array([len(a) for a in arrays], np.int32)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int32)
        samples = np.concatenate(arrays) if arrays else np.zeros(0, np.float32)
        return cls(samples, starts, lengths,
                   tuple(names) if names is not None else tuple(map(str, range(len(arrays)))))

    @classmethod
    def from_files(cls, paths: Sequence[Path], sample_rate: int = 16000, clip_samples: int = 16000,
                   rms: float | None = None) -> "BackgroundNoise":
        """Reads noise files; unreadable ones and ones not longer than a clip are left out
        with a warning naming them."""
        arrays, names, issues = [], [], []
        for path in paths:
            audio, file_issues = _read_int16(Path(path), sample_rate, None)
            issues += [(kind, Path(path).name, detail) for kind, detail in file_issues]
            if audio is None:
                continue
            if len(audio) <= clip_samples:
                warnings.warn(f"background noise file {path} has {len(audio)} samples, not more "
                              f"than one clip ({clip_samples}); it is not used for mixing.",
                              AudioFileWarning, stacklevel=2)
                continue
            arrays.append(audio.astype(np.float32) / 32768.0)
            names.append(Path(path).name)
        if paths:
            _warn_issues(issues, len(paths), str(Path(paths[0]).parent))
        return cls.from_arrays(arrays, names, rms)

    def __len__(self) -> int:
        return len(self.lengths)

    @functools.cached_property
    def variables(self):
        """(samples, starts, lengths) as tf.Variables, made once: tf.data and tf.function graphs
        capture a variable by reference, where they would copy ~25 MB of noise into every
        pipeline definition as a constant (seconds per ``dataset()`` call)."""
        with tf.init_scope():  # create eagerly even when first used while tracing a graph
            return tuple(tf.Variable(array, trainable=False, name=name) for array, name in
                         ((self.samples, "noise_samples"), (self.starts, "noise_starts"),
                          (self.lengths, "noise_lengths")))


    @functools.cached_property
    def compiled_augment(self):
        """The XLA-compiled augmentation for these noise variables. One function shared by all
        noise sets would reuse its first trace, which holds the first set's variables, and fail
        once that data set is gone (a second data set in the same notebook)."""
        return tf.function(_augment, jit_compile=True)


def time_stretch_and_shift(audio, factors, shifts):
    """The seed's resample + time shift, for a batch, as one gather.

    ``audio`` [B, N] float32; ``factors`` [B] stretch factors: the clip is resized to
    ``int(N * factor)`` samples by bilinear interpolation (``tf.image.resize``, half-pixel
    centres) and centre-cropped or zero-padded back to N (``tf.image.resize_with_crop_or_pad``);
    ``shifts`` [B] int: the result is delayed by ``shift`` samples (negative: advanced),
    zero-filled.
    """
    audio = tf.convert_to_tensor(audio, tf.float32)
    factors = tf.convert_to_tensor(factors, tf.float32)
    shifts = tf.convert_to_tensor(shifts, tf.int32)
    n = tf.shape(audio)[1]
    n_float = tf.cast(n, tf.float32)
    stretched = tf.cast(n_float * factors, tf.int32)  # truncation, as the seed's cast
    # Offset of output sample 0 inside the stretched clip: a crop starts (L-N)//2 in, a pad puts
    # the clip (N-L)//2 in.
    offsets = tf.where(stretched > n, (stretched - n) // 2, -((n - stretched) // 2))
    before_shift = tf.range(n)[tf.newaxis, :] - shifts[:, tf.newaxis]
    in_stretched = before_shift + offsets[:, tf.newaxis]
    valid = ((before_shift >= 0) & (before_shift < n)
             & (in_stretched >= 0) & (in_stretched < stretched[:, tf.newaxis]))
    # tf.image.resize's half-pixel mapping from output to input position, scale = in/out.
    scale = n_float / tf.cast(stretched, tf.float32)
    source = (tf.cast(in_stretched, tf.float32) + 0.5) * scale[:, tf.newaxis] - 0.5
    source_floor = tf.floor(source)
    fraction = source - source_floor
    lower = tf.clip_by_value(tf.cast(source_floor, tf.int32), 0, n - 1)
    upper = tf.clip_by_value(tf.cast(source_floor, tf.int32) + 1, 0, n - 1)
    lower_values = tf.gather(audio, lower, batch_dims=1)
    upper_values = tf.gather(audio, upper, batch_dims=1)
    result = lower_values + (upper_values - lower_values) * fraction
    return tf.where(valid, result, tf.zeros_like(result))


def augment_audio(audio, is_silence, noise: BackgroundNoise | None, seed, *,
                  resample: float = 0.15, volume_resample: float = 0.0,
                  time_shift_samples: int = 1600, background_frequency: float = 0.8,
                  background_volume: float = 0.1, silence_volume: float | None = None,
                  jit_compile: bool = False):
    """The seed's training augmentation for a batch ``audio`` [B, N] float32 in [-1, 1]
    (or int16 PCM, scaled by 1/32768 like the seed's decoder).

    In order: stretch x U(1-resample, 1+resample) (bilinear, centre crop/pad), foreground volume
    x U(1-volume_resample, 1+volume_resample) (0 for ``is_silence`` [B] bool examples), shift by
    U[-time_shift_samples, time_shift_samples) samples, then with probability
    ``background_frequency`` add a random N-sample slice of a random noise recording at gain
    U(0, background_volume) (U(0, silence_volume) for silence, default the same), clip to +-1.
    ``seed`` is a stateless seed (shape [2] ints): the same seed gives the same batch.
    ``jit_compile`` runs it through XLA, which fuses its ~30 element-wise ops and gathers into a
    few loops (~9x faster on CPU; the float rounding of positions differs by ~1e-4 at most).
    """
    with_noise = noise is not None and len(noise) > 0 and background_frequency > 0
    if with_noise:
        noise_arrays = noise.variables
    else:
        noise_arrays = (np.zeros(1, np.float32), np.zeros(1, np.int32), np.ones(1, np.int32))
    function = _augment
    if jit_compile:
        function = noise.compiled_augment if with_noise else _augment_xla
    return function(
        audio, is_silence, seed, *noise_arrays, with_noise=with_noise, resample=float(resample),
        volume_resample=float(volume_resample), time_shift_samples=int(time_shift_samples),
        background_frequency=float(background_frequency),
        background_volume=float(background_volume),
        silence_volume=float(background_volume if silence_volume is None else silence_volume))


def _augment(audio, is_silence, seed, noise_samples, noise_starts, noise_lengths, *,
             with_noise, resample, volume_resample, time_shift_samples, background_frequency,
             background_volume, silence_volume):
    # The noise arrays are arguments, not captured constants, so XLA does not fold ~25 MB of
    # noise into the compiled program (that doubled the compile time).
    audio = tf.convert_to_tensor(audio)
    if audio.dtype == tf.int16:  # stored clips: converting here fuses it into the same loops
        audio = tf.cast(audio, tf.float32) / 32768.0
    audio = tf.cast(audio, tf.float32)
    is_silence = tf.convert_to_tensor(is_silence, tf.bool)
    batch, n = tf.shape(audio)[0], tf.shape(audio)[1]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=7)

    if resample > 0 or time_shift_samples > 0:
        factors = (tf.random.stateless_uniform([batch], seeds[0], 1.0 - resample, 1.0 + resample)
                   if resample > 0 else tf.ones([batch]))
        shifts = (tf.random.stateless_uniform([batch], seeds[1], -time_shift_samples,
                                              time_shift_samples, dtype=tf.int32)
                  if time_shift_samples > 0 else tf.zeros([batch], tf.int32))
        audio = time_stretch_and_shift(audio, factors, shifts)
    gain = (tf.random.stateless_uniform([batch], seeds[2], 1.0 - volume_resample,
                                        1.0 + volume_resample)
            if volume_resample > 0 else tf.ones([batch]))
    audio = audio * tf.where(is_silence, 0.0, gain)[:, tf.newaxis]

    if with_noise:
        noise_lengths = tf.convert_to_tensor(noise_lengths, tf.int32)
        which = tf.random.stateless_uniform([batch], seeds[3], 0, tf.size(noise_lengths),
                                            dtype=tf.int32)
        room = tf.cast(tf.gather(noise_lengths, which) - n, tf.float32)  # start in [0, len - N)
        offsets = tf.cast(tf.random.stateless_uniform([batch], seeds[4]) * room, tf.int32)
        first = tf.gather(tf.convert_to_tensor(noise_starts, tf.int32), which) + offsets
        slices = tf.gather(tf.convert_to_tensor(noise_samples, tf.float32),
                           first[:, tf.newaxis] + tf.range(n)[tf.newaxis, :])
        used = tf.random.stateless_uniform([batch], seeds[5]) < background_frequency
        top = tf.where(is_silence, silence_volume, background_volume)
        volumes = tf.random.stateless_uniform([batch], seeds[6]) * top
        audio = audio + slices * tf.where(used, volumes, 0.0)[:, tf.newaxis]
    return tf.clip_by_value(audio, -1.0, 1.0)


_augment_xla = tf.function(_augment, jit_compile=True)


def spec_augment(features, training=False, *, time_masks_number: int = 2,
                 time_mask_max_size: int = 10, frequency_masks_number: int = 2,
                 frequency_mask_max_size: int = 5):
    """SpecAugment-style masking of features [B, T, D] (the seed's ``SpecAugment`` layer).

    Only when ``training`` (a Python bool or a bool tensor): ``time_masks_number`` masks of width
    U[0, time_mask_max_size) frames and ``frequency_masks_number`` masks of width
    U[0, frequency_mask_max_size) coefficients set features to 0, each at a uniform position.
    Unlike the seed (one mask per batch) every example gets its own masks. Call it from model
    code between the feature layer and the body; it is off by default (``use_spec_augment=0``).
    """
    features = tf.convert_to_tensor(features)
    if features.shape.rank != 3:
        raise ValueError(f"spec_augment expects features [batch, time, coefficients], got shape "
                         f"{features.shape}")

    def masked():
        out = _mask_along(features, 1, time_masks_number, time_mask_max_size)
        return _mask_along(out, 2, frequency_masks_number, frequency_mask_max_size)

    if training is None or isinstance(training, (bool, int)):
        return masked() if training else features
    return tf.cond(tf.cast(training, tf.bool), masked, lambda: features)


def _mask_along(features, axis: int, count: int, max_size: int):
    if count <= 0 or max_size <= 1:  # widths are drawn from [0, max_size): nothing to mask
        return features
    batch, size = tf.shape(features)[0], tf.shape(features)[axis]
    positions = tf.range(size)[tf.newaxis, :]
    keep = tf.ones([batch, size], tf.bool)
    for _ in range(count):
        width = tf.random.uniform([batch, 1], 0, max_size, tf.int32)
        width = tf.minimum(width, size)
        start = tf.cast(tf.random.uniform([batch, 1]) * tf.cast(size - width + 1, tf.float32),
                        tf.int32)
        keep &= ~((positions >= start) & (positions < start + width))
    mask = tf.cast(keep, features.dtype)
    return features * (mask[:, :, tf.newaxis] if axis == 1 else mask[:, tf.newaxis, :])


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
    gain instead of zeros), ``volume_resample`` (seed flag, default 0), and loading options
    ``progress``, ``cache``, ``cache_dir``, ``num_workers``.

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
                 eval_silence_noise: bool = False, progress: bool = True, cache: bool = True,
                 cache_dir: str | Path | None = None, num_workers: int | None = None):
        if split_by not in ("auto", "hash", "lists"):
            raise ValueError(f"split_by must be 'auto', 'hash' or 'lists', not {split_by!r}")
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
                entries[split] += [(path, word_ids[UNKNOWN_WORD_LABEL])
                                   for path, _ in unknown[split][:unknown_size]]
        for split in ("validation", "testing", "training"):
            rng.shuffle(entries[split])
        paths = sorted({path for split in SPLITS for path, _ in entries[split] if path})
        row_of = {path: row for row, path in enumerate(paths)}
        index = {split: [(row_of[path] if path else -1, label) for path, label in entries[split]]
                 for split in SPLITS}
        return paths, index

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

        data = tf.data.Dataset.from_tensor_slices((self._rows[split], self._label_ids[split]))
        if shuffle:
            data = data.shuffle(len(self._rows[split]), seed=seed, reshuffle_each_iteration=True)
        if repeat:
            data = data.repeat()
        data = data.batch(batch_size).enumerate()
        data = data.map(lambda step, batch: load(step, *batch),
                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
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
