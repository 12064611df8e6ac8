"""Reading audio files into int16 clip arrays: robust decoding, resampling, and the .npy cache."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import warnings
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile
from tqdm.auto import tqdm

from kwsnb.data.files import atomic_write, remove_partial_writes, write_text_atomic

logger = logging.getLogger("kwsnb.data")


AUDIO_EXTENSIONS = (".wav", ".flac")


# 2: float files decoded as float (format 1 cached them as zeros).
_CACHE_FORMAT = 2
# The cache keeps the most recently used entries within this size (``KWSNB_CACHE_MAX_GB``):
# the full Speech Commands is ~3.4 GB decoded, and every new folder or file list adds an entry.
DEFAULT_CACHE_MAX_GB = 8.0
# A new entry is not written when it would leave less than this free on the disk: a full disk
# would then fail the user's own writes (checkpoints, models) for the sake of a cache.
CACHE_MIN_FREE_BYTES = 2 * 1024 ** 3
# A temporary file older than this was left by a killed writer.
_STALE_TEMPORARY_S = 24 * 3600


class AudioFileWarning(UserWarning):
    """Some audio files were skipped or fixed while loading; the message names them."""


# Issue kinds, in the order the summary lists them. "skip" kinds lose the file.
_ISSUE_TEXT = {
    "unreadable": "skipped as unreadable",
    "empty": "skipped as empty",
    "downmixed": "downmixed to mono",
    "nonfinite": "with NaN/inf samples (set to 0)",
    "clipped": "clipped at full scale",
    "resampled": "resampled",
    "cropped": "cropped to the clip length",
}


_SKIP_ISSUES = {"unreadable", "empty"}


def read_float(path) -> tuple[np.ndarray, int]:
    """Decodes any file libsndfile opens to float32 ``[samples, channels]`` at its own rate.

    The one decoder of every path (clips, test folders, uploads, long recordings). Float, not
    int16: libsndfile truncates float samples (what numpy, scipy and many recorders write) to 0
    when asked for int16, so a float WAV would load as silence; int16 files come back exactly
    (x / 32768). Raises what soundfile raises for an unreadable file.
    """
    return soundfile.read(path, dtype="float32", always_2d=True)


def read_int16(path: Path, sample_rate: int, clip_samples: int | None):
    """Decodes one file to mono int16 at ``sample_rate``, padded/cropped to ``clip_samples``.

    Returns ``(samples or None, [(issue, detail), ...])``; ``None`` means the file is skipped.
    """
    issues = []
    try:
        if path.stat().st_size == 0:
            return None, [("empty", "0 bytes")]
        audio, file_rate = read_float(path)
    except Exception as error:  # any decoder failure means "skip this file", never stop the run
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return None, [("unreadable", detail)]
    if audio.shape[0] == 0:
        return None, [("empty", "0 samples")]
    if audio.shape[1] > 1:
        issues.append(("downmixed", f"{audio.shape[1]} channels"))
        audio = audio.mean(axis=1)
    else:
        audio = audio[:, 0]
    bad = ~np.isfinite(audio)
    if bad.any():  # a float file can hold NaN/inf; they would poison every feature frame
        issues.append(("nonfinite", f"{int(bad.sum())} NaN/inf samples set to 0"))
        audio = np.where(bad, np.float32(0), audio)
    if file_rate != sample_rate:
        import soxr  # only needed for the rare wrong-rate file

        issues.append(("resampled", f"{file_rate} Hz -> {sample_rate} Hz"))
        audio = soxr.resample(audio, file_rate, sample_rate, quality="HQ")
    peak = float(np.abs(audio).max()) if len(audio) else 0.0
    if peak > 1.0:  # only float files go past full scale
        issues.append(("clipped", f"peak {peak:.2f} of full scale"))
    audio = np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)
    if clip_samples is not None:
        if len(audio) > clip_samples:
            issues.append(("cropped", f"{len(audio)} -> {clip_samples} samples"))
            audio = audio[:clip_samples]
        elif len(audio) < clip_samples:  # the seed's decoder pads the end with zeros, silently
            audio = np.pad(audio, (0, clip_samples - len(audio)))
    return audio, issues


def warn_issues(issues: list[tuple[str, str, str]], total: int, where: str, cached: bool = False):
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
    audio, issues = read_int16(path, sample_rate, clip_samples)
    warn_issues([(kind, str(path), detail) for kind, detail in issues], 1, str(path.parent))
    if audio is None:
        return None
    return audio.astype(np.float32) / 32768.0


def default_cache_dir() -> Path:
    """``$KWSNB_CACHE_DIR``, else ``$XDG_CACHE_HOME/kwsnb/clips``, else ``~/.cache/kwsnb/clips``."""
    if os.environ.get("KWSNB_CACHE_DIR"):
        return Path(os.environ["KWSNB_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "kwsnb" / "clips"


def cache_max_bytes() -> int:
    """``$KWSNB_CACHE_MAX_GB`` (a number of gigabytes; 0 turns the cache's writes off)."""
    text = os.environ.get("KWSNB_CACHE_MAX_GB", "")
    try:
        gigabytes = float(text) if text else DEFAULT_CACHE_MAX_GB
    except ValueError:
        raise ValueError(f"KWSNB_CACHE_MAX_GB={text!r} is not a number of gigabytes "
                         f"(default {DEFAULT_CACHE_MAX_GB:g})") from None
    if gigabytes < 0:
        raise ValueError(f"KWSNB_CACHE_MAX_GB={text!r} is negative; use 0 to write no cache")
    return int(gigabytes * 1024 ** 3)


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
        os.utime(meta_path)  # most recently used: pruning removes the others first
        return clips, ok, [tuple(issue) for issue in meta["issues"]]
    except (OSError, ValueError, KeyError) as error:
        logger.warning("ignoring unreadable clip cache %s (%s)", clips_path, error)
        return None


def _prune_cache(cache_dir: Path, max_bytes: int) -> None:
    """Removes the least recently used entries (by their metadata's time) until the cache holds
    at most ``max_bytes``, and the temporary files that killed writers left."""
    entries = []
    for clips_path in cache_dir.glob("*.npy"):
        meta_path = clips_path.with_suffix(".json")
        try:
            # Without its metadata (yet), the array's own time: another process may be writing it.
            used = (meta_path if meta_path.exists() else clips_path).stat().st_mtime
            entries.append((used, clips_path.stat().st_size, clips_path, meta_path))
        except OSError:  # removed by another process meanwhile
            continue
    total = sum(size for _, size, _, _ in entries)
    for used, size, clips_path, meta_path in sorted(entries):
        if total <= max_bytes:
            break
        meta_path.unlink(missing_ok=True)  # first, so no reader takes a half-removed entry
        clips_path.unlink(missing_ok=True)
        total -= size
        logger.info("clip cache: removed %s (%.0f MB; least recently used)", clips_path.name,
                    size / 1e6)
    remove_partial_writes(cache_dir, older_than_s=_STALE_TEMPORARY_S)


def _write_cache(cache_dir: Path, key: str, clips: np.ndarray, ok: np.ndarray, issues,
                 max_bytes: int) -> None:
    if clips.nbytes > max_bytes:
        logger.info("clip cache: %.0f MB is over KWSNB_CACHE_MAX_GB; not cached", clips.nbytes / 1e6)
        return
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        _prune_cache(cache_dir, max_bytes - clips.nbytes)
        free = shutil.disk_usage(cache_dir).free
        if free - clips.nbytes < CACHE_MIN_FREE_BYTES:
            logger.warning("clip cache: not writing %.0f MB to %s, the disk has only %.1f GB free "
                           "(set KWSNB_CACHE_DIR to a folder on a larger disk)",
                           clips.nbytes / 1e6, cache_dir, free / 1024 ** 3)
            return
        meta = {"format": _CACHE_FORMAT, "ok": "".join("1" if flag else "0" for flag in ok),
                "issues": [list(issue) for issue in issues]}
        atomic_write(cache_dir / f"{key}.npy", lambda temporary: np.save(temporary, clips))
        # The metadata goes last: an entry without it is incomplete and never read.
        write_text_atomic(cache_dir / f"{key}.json", json.dumps(meta))
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
    :class:`AudioFileWarning`. With ``cache`` the decoded array is reused across runs: the key
    is the files' names, sizes and times; the cache keeps the most recently used entries within
    ``KWSNB_CACHE_MAX_GB`` (default 8) and writes none that would leave under 2 GB free.
    """
    paths = [Path(p) for p in paths]
    root = Path(root)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    max_bytes = cache_max_bytes() if cache else 0  # a bad setting fails before the decoding
    key = _cache_key(root, paths, sample_rate, clip_samples) if cache else None
    if cache:
        hit = _read_cache(cache_dir, key, len(paths), clip_samples, extra_rows)
        if hit is not None:
            logger.info("loaded %d clips from cache %s", len(paths), cache_dir / f"{key}.npy")
            clips, ok, issues = hit
            warn_issues(issues, len(paths), str(root), cached=True)
            return clips, ok

    clips = np.zeros((len(paths) + extra_rows, clip_samples), np.int16)
    ok = np.zeros(len(paths), bool)
    issues = []

    def decode(index):
        audio, file_issues = read_int16(paths[index], sample_rate, clip_samples)
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
    warn_issues(issues, len(paths), str(root))
    if cache:
        _write_cache(cache_dir, key, clips[:len(paths)], ok, issues, max_bytes)
    return clips, ok


def _relative_name(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
