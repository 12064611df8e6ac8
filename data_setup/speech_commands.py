"""Official Speech Commands data set (Warden, 2018): download, verify, extract.

    python -m data_setup.speech_commands --out data/speech_commands_v2 [--version 1|2]
        [--source URL|ARCHIVE|FOLDER] [--test_set] [--no_verify]

What happens, and what is left on disk:

* The archive is downloaded next to the data folder (``<download_dir>/<name>.part`` while it
  arrives, with a progress bar). An interrupted download keeps the ``.part`` file; running the
  same command again resumes it with an HTTP Range request (a server that ignores Range sends
  the whole file, and the download restarts from byte 0).
* Before the archive gets its final name it is checked against the official size and SHA-256
  (``ARCHIVES`` below). A file that fails is renamed ``<name>.bad`` - kept for inspection, never
  resumed from - and the next run downloads afresh. ``verify=False`` (``--no_verify``) skips
  the checks for mirrors or re-packed archives; the size the server announces is still enforced.
* The archive is extracted into a hidden sibling folder (``.<out>.partial``), checked to be a
  Speech Commands layout, marked with ``.complete`` and only then renamed to ``out_dir``. So a
  folder appears under the final name complete or not at all; a folder there without the marker
  is never treated as a finished data set. Tar members are extracted with tarfile's ``data``
  filter (no absolute paths, no ``..``, no links out of the folder).
* ``source`` may be an http(s) URL, a local ``.tar.gz``/``.tgz``/``.zip`` archive, or an
  already-extracted folder. A folder is validated and used in place: ``prepare`` returns its
  path and writes nothing into it (it may be read-only, or shared).
* ``test_set=True`` also prepares the official test set (``_silence_``, ``_unknown_`` and the
  ten command words) in the sibling folder ``<out>_test`` (see ``test_set_dir``).

``check_layout`` / ``require_layout`` are the reusable checks behind the "no data here" error
that also tells the user which command makes the data.
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import re
import shutil
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

OFFICIAL_BASE_URL = "http://download.tensorflow.org/data/"
COMPLETE_MARKER = ".complete"
BACKGROUND_NOISE_DIR = "_background_noise_"
AUDIO_SUFFIXES = (".wav", ".flac")
SPLIT_LISTS = ("validation_list.txt", "testing_list.txt")

_CHUNK_BYTES = 1 << 20
_MAKE_DATA_HINT = ("Make the data with `python -m data_setup.speech_commands --out {folder}` "
                   "(official Speech Commands download, 1.5-2.4 GB) or "
                   "`python -m data_setup.synthetic --out {folder}` (small offline TTS set).")


@dataclass(frozen=True)
class ArchiveSpec:
    """One official archive: file name under OFFICIAL_BASE_URL, size in bytes, SHA-256."""

    filename: str
    num_bytes: int
    sha256: str

    @property
    def url(self) -> str:
        return OFFICIAL_BASE_URL + self.filename


# Sizes and SHA-256 as published by TensorFlow Datasets (url_checksums/speech_commands.txt: V2
# and its test set) and Hugging Face datasets (superb dataset_infos.json: V1 and its test set);
# the V1 and V2 hashes also match torchaudio's SPEECHCOMMANDS checksums.
ARCHIVES: dict[tuple[int, str], ArchiveSpec] = {
    (2, "train"): ArchiveSpec("speech_commands_v0.02.tar.gz", 2_428_923_189,
                              "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58"),
    (2, "test"): ArchiveSpec("speech_commands_test_set_v0.02.tar.gz", 112_563_277,
                             "cc2a00c1147c2254e9be3fa0f779d8c17421dc349b86366567a8edfa9acd51df"),
    (1, "train"): ArchiveSpec("speech_commands_v0.01.tar.gz", 1_489_096_277,
                              "743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d"),
    (1, "test"): ArchiveSpec("speech_commands_test_set_v0.01.tar.gz", 71_271_436,
                             "baa084f6b62c91de660ff0588ae4dfc4e4d534aa99ac0e5f406cba75836cbd00"),
}
KNOWN_ARCHIVES: dict[str, ArchiveSpec] = {spec.filename: spec for spec in ARCHIVES.values()}


class DataSetupError(Exception):
    """A data set could not be prepared; the message says why and what to do."""


class DownloadError(DataSetupError):
    """The transfer failed or stopped early; any partial file is kept for resuming."""


class VerificationError(DataSetupError):
    """An archive's size or SHA-256 differs from the expected one."""


class ArchiveError(DataSetupError):
    """An archive is damaged, truncated, unsafe, or does not hold a Speech Commands layout."""


class MissingDataError(DataSetupError, FileNotFoundError):
    """No usable data where it was looked for."""


# tarfile.FilterError exists where tarfile has extraction filters (3.10.12+, 3.11.4+).
_TAR_FILTER_ERROR = getattr(tarfile, "FilterError", ())


# --------------------------------------------------------------------------------------------
# Layout check


@dataclass(frozen=True)
class LayoutSummary:
    """What ``check_layout`` found in a folder."""

    folder: Path
    clips_per_word: dict[str, int] = field(default_factory=dict)
    noise_files: tuple[str, ...] = ()
    listed_missing: tuple[str, ...] = ()  # clips named in the split lists but absent
    has_complete_marker: bool = False
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def words(self) -> list[str]:
        return sorted(self.clips_per_word)

    @property
    def num_clips(self) -> int:
        return sum(self.clips_per_word.values())

    def describe(self) -> str:
        return (f"{len(self.clips_per_word)} word folders, {self.num_clips:,} clips, "
                f"{len(self.noise_files)} background-noise recordings")


def _audio_files(folder: Path) -> list[str]:
    with os.scandir(folder) as entries:
        return [entry.name for entry in entries
                if entry.is_file() and entry.name.lower().endswith(AUDIO_SUFFIXES)]


def check_layout(folder: str | os.PathLike, require_noise: bool = True) -> LayoutSummary:
    """Summarize a Speech Commands folder: word folders and clip counts, noise files, problems.

    A word folder is any sub-folder (other than ``_background_noise_``) holding .wav or .flac
    clips; ``_silence_``/``_unknown_`` of the official test set count as words. Problems: no word
    folders, no noise recordings (when ``require_noise``), or clips that validation_list.txt /
    testing_list.txt name but that are missing (the mark of an interrupted extraction).
    Never raises for a missing folder: that is reported as a problem.
    """
    folder = Path(folder)
    if not folder.exists():
        return LayoutSummary(folder, problems=("the folder does not exist",))
    if not folder.is_dir():
        return LayoutSummary(folder, problems=("it is a file, not a folder",))

    clips_per_word: dict[str, int] = {}
    noise_files: list[str] = []
    for sub in sorted(folder.iterdir()):
        if not sub.is_dir() or sub.name.startswith("."):
            continue
        clips = _audio_files(sub)
        if sub.name == BACKGROUND_NOISE_DIR:
            noise_files = sorted(clips)
        elif clips:
            clips_per_word[sub.name] = len(clips)

    listed_missing: list[str] = []
    for list_name in SPLIT_LISTS:
        list_path = folder / list_name
        if list_path.is_file():
            for line in list_path.read_text().splitlines():
                relative = line.strip()
                if relative and not (folder / relative).is_file():
                    listed_missing.append(relative)

    problems = []
    if not clips_per_word:
        problems.append("no word folders holding .wav/.flac clips")
    if require_noise and not noise_files:
        problems.append(f"no {BACKGROUND_NOISE_DIR}/ folder with .wav/.flac recordings")
    if listed_missing:
        problems.append(f"{len(listed_missing)} clips named in {' / '.join(SPLIT_LISTS)} are "
                        f"missing (e.g. {listed_missing[0]}), so the folder looks incomplete")
    return LayoutSummary(folder, clips_per_word, tuple(noise_files), tuple(listed_missing),
                         (folder / COMPLETE_MARKER).exists(), tuple(problems))


def require_layout(folder: str | os.PathLike, require_noise: bool = True) -> LayoutSummary:
    """``check_layout``, raising ``MissingDataError`` (what was looked for, how to make it)."""
    summary = check_layout(folder, require_noise)
    if not summary.ok:
        looked_for = "word folders holding .wav/.flac clips"
        if require_noise:
            looked_for += f" and a {BACKGROUND_NOISE_DIR}/ folder"
        raise MissingDataError(
            f"No usable Speech Commands data in {summary.folder}: {'; '.join(summary.problems)}. "
            f"Looked for {looked_for} (the Speech Commands layout). "
            + _MAKE_DATA_HINT.format(folder=summary.folder))
    return summary


# --------------------------------------------------------------------------------------------
# Download and verification


def _partial_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _kept_note(part: Path) -> str:
    size = part.stat().st_size if part.exists() else 0
    if size:
        return (f"The partial file {part} ({size:,} bytes) is kept; run the same command again "
                "to resume.")
    return "Nothing was saved; run the same command again to retry."


def _offline_hint(url: str) -> str:
    return (f"If this machine has no internet access, fetch {url} elsewhere and pass the file "
            "with --source PATH.")


def _content_range(response_headers) -> tuple[int | None, int | None]:
    """(first byte, total size) from a 'Content-Range: bytes a-b/total' (or 'bytes */total')."""
    match = re.match(r"bytes\s+(\d+|\*)(?:-\d+)?/(\d+|\*)",
                     response_headers.get("Content-Range", "") or "")
    if not match:
        return None, None
    start, total = match.groups()
    return (None if start == "*" else int(start)), (None if total == "*" else int(total))


def _fetch(url: str, part: Path, expected_size: int | None, progress: bool,
           timeout: float) -> None:
    """Append the rest of ``url`` to ``part`` (Range request), or rewrite it from byte 0."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "kwsnb-data-setup"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            # Range not satisfiable: the .part is at least as long as the file on the server.
            _, total = _content_range(error.headers)
            if total == offset:
                return
            if progress:
                print(f"{part.name} is longer than {url} ({offset:,} bytes); starting again.")
            part.unlink()
            return _fetch(url, part, expected_size, progress, timeout)
        raise DownloadError(f"Downloading {url} failed: HTTP {error.code} {error.reason}. "
                            f"{_kept_note(part)}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", None) or error
        raise DownloadError(f"Downloading {url} failed: {reason}. {_kept_note(part)} "
                            f"{_offline_hint(url)}") from None

    with response:
        length = response.headers.get("Content-Length")
        length = int(length) if length is not None and length.isdigit() else None
        first_byte, total = _content_range(response.headers)
        if offset and response.status == 206 and first_byte != offset:
            # A range other than the one asked for: drop the .part and fetch the whole file.
            response.close()
            part.unlink()
            return _fetch(url, part, expected_size, progress, timeout)
        if offset and response.status == 206:
            mode = "ab"
            total = total if total is not None else (offset + length if length is not None
                                                     else None)
        else:
            if offset and progress:
                print(f"The server did not resume {url}; downloading it again from byte 0.")
            offset, mode, total = 0, "wb", length
        if expected_size is not None and total is not None and total != expected_size:
            raise VerificationError(
                f"{url} is {total:,} bytes on the server, but the official archive is "
                f"{expected_size:,} bytes; the file may have changed. Nothing was written. "
                "Pass --no_verify (verify=False) to accept it anyway.")
        free = shutil.disk_usage(part.parent).free
        if total is not None and total - offset > free:
            raise DownloadError(f"Not enough disk space in {part.parent} for {url}: "
                                f"{total - offset:,} bytes needed, {free:,} free. "
                                f"{_kept_note(part)}")
        with open(part, mode) as out_file, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                desc=part.name[:-len(".part")], disable=not progress) as bar:
            try:
                while chunk := response.read(_CHUNK_BYTES):
                    out_file.write(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as error:
                out_file.flush()
                raise DownloadError(f"Downloading {url} stopped: {error!r}. "
                                    f"{_kept_note(part)}") from None
    received = part.stat().st_size
    if total is not None and received < total:
        raise DownloadError(f"Downloading {url} stopped after {received:,} of {total:,} bytes. "
                            f"{_kept_note(part)}")


def sha256_of(path: str | os.PathLike, progress: bool = False) -> str:
    """Hex SHA-256 of a file, read in chunks (with a progress bar when asked)."""
    path = Path(path)
    digest = hashlib.sha256()
    with open(path, "rb") as file, tqdm(total=path.stat().st_size, unit="B", unit_scale=True,
                                        unit_divisor=1024, desc=f"checking {path.name}",
                                        disable=not progress) as bar:
        while chunk := file.read(_CHUNK_BYTES):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def verify_archive(path: str | os.PathLike, expected_size: int | None = None,
                   sha256: str | None = None, progress: bool = False) -> None:
    """Raise ``VerificationError`` if the file's size or SHA-256 differs from the given ones."""
    path = Path(path)
    size = path.stat().st_size
    if expected_size is not None and size != expected_size:
        raise VerificationError(f"{path} is {size:,} bytes, expected {expected_size:,}.")
    if sha256 is not None:
        actual = sha256_of(path, progress)
        if actual != sha256.lower():
            raise VerificationError(f"{path} has SHA-256 {actual}, expected {sha256}.")


def download(url: str, dest: str | os.PathLike, expected_size: int | None = None,
             sha256: str | None = None, progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` via ``dest.part``, resuming a partial file; verify; rename.

    Network failures raise ``DownloadError`` and keep the ``.part``. A file that fails the
    size/SHA-256 check is moved to ``dest.bad`` and ``VerificationError`` is raised, so the next
    call starts afresh instead of resuming from corrupt bytes.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = _partial_path(dest)
    if expected_size is not None and part.exists() and part.stat().st_size > expected_size:
        part.unlink()  # cannot be a prefix of the right file
    if not (expected_size is not None and part.exists()
            and part.stat().st_size == expected_size):
        _fetch(url, part, expected_size, progress, timeout)
    try:
        verify_archive(part, expected_size, sha256, progress)
    except VerificationError as error:
        bad = dest.with_name(dest.name + ".bad")
        os.replace(part, bad)
        raise VerificationError(f"Download of {url} is corrupt: {error} Moved it to {bad} "
                                "(delete it when done looking); run the command again to "
                                "download afresh.") from None
    os.replace(part, dest)
    return dest


# --------------------------------------------------------------------------------------------
# Extraction


def _check_member_is_safe(member: tarfile.TarInfo) -> None:
    """Fallback for Pythons without tarfile filters: refuse paths or links leaving the folder."""
    for name in (member.name, member.linkname if (member.issym() or member.islnk()) else ""):
        parts = Path(name).parts
        if name and (Path(name).is_absolute() or ".." in parts):
            raise ArchiveError(f"refusing unsafe archive member {member.name!r}")
    if member.isdev():
        raise ArchiveError(f"refusing device file {member.name!r} in the archive")


def _extract_tar(archive: Path, into: Path, progress: bool) -> None:
    with open(archive, "rb") as raw, tarfile.open(fileobj=raw, mode="r:*") as tar, tqdm(
            total=archive.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024,
            desc=f"extracting {archive.name}", disable=not progress) as bar:
        for member in tar:
            if hasattr(tarfile, "data_filter"):
                tar.extract(member, into, filter="data")
            else:
                _check_member_is_safe(member)
                tar.extract(member, into)
            bar.update(raw.tell() - bar.n)  # compressed bytes consumed so far


def _extract_zip(archive: Path, into: Path, progress: bool) -> None:
    # ZipFile.extract already drops absolute paths and '..' components.
    with zipfile.ZipFile(archive) as zip_file:
        members = zip_file.infolist()
        for member in tqdm(members, desc=f"extracting {archive.name}", unit="file",
                           disable=not progress):
            zip_file.extract(member, into)


def _layout_root(folder: Path) -> Path:
    """Step into a lone wrapping folder (archives made with `tar czf x.tgz dirname/`)."""
    while not check_layout(folder, require_noise=False).clips_per_word:
        children = [child for child in folder.iterdir()
                    if not child.name.startswith(".") and child.name != "__MACOSX"]
        if len(children) != 1 or not children[0].is_dir():
            break
        folder = children[0]
    return folder


def extract(archive: str | os.PathLike, out_dir: str | os.PathLike, require_noise: bool = True,
            progress: bool = True, marker_info: dict | None = None) -> Path:
    """Extract a .tar.gz/.tgz/.zip into ``out_dir`` all-or-nothing; write the ``.complete`` marker.

    The archive is unpacked into ``.<out_dir name>.partial`` beside ``out_dir``, checked with
    ``check_layout``, marked, and renamed into place. On any failure the partial folder is
    removed and ``ArchiveError`` says why; ``out_dir`` is not created.
    """
    archive, out_dir = Path(archive), Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.with_name(f".{out_dir.name}.partial")
    if staging.exists():
        shutil.rmtree(staging)  # left by an interrupted earlier run
    staging.mkdir()
    try:
        try:
            if zipfile.is_zipfile(archive):
                _extract_zip(archive, staging, progress)
            else:
                _extract_tar(archive, staging, progress)
        except _TAR_FILTER_ERROR as error:
            raise ArchiveError(f"{archive} holds an unsafe member ({error}); not extracted.") \
                from None
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError) as error:
            if isinstance(error, OSError) and error.errno is not None:
                raise ArchiveError(f"Extracting {archive} into {staging} failed: {error}. "
                                   "The partial folder was removed.") from None
            raise ArchiveError(
                f"{archive} is damaged or truncated, or not a .tar.gz/.tgz/.zip archive "
                f"({type(error).__name__}: {error}). If it was downloaded, delete it and run the "
                "command again.") from None
        root = _layout_root(staging)
        summary = check_layout(root, require_noise)
        if not summary.ok:
            raise ArchiveError(f"{archive} does not hold a Speech Commands layout: "
                               f"{'; '.join(summary.problems)}. Nothing was installed.")
        info = {"archive": str(archive), "words": len(summary.clips_per_word),
                "clips": summary.num_clips, "noise_files": len(summary.noise_files)}
        info.update(marker_info or {})
        (root / COMPLETE_MARKER).write_text(json.dumps(info, indent=1) + "\n")
        if out_dir.exists():
            out_dir.rmdir()  # callers only get here with an empty (or no) out_dir
        os.replace(root, out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out_dir


# --------------------------------------------------------------------------------------------
# prepare() and the command line


def default_out_dir(version: int = 2) -> Path:
    return Path("data") / f"speech_commands_v{version}"


def test_set_dir(out_dir: str | os.PathLike) -> Path:
    """Where ``prepare(..., test_set=True)`` puts the official test set: ``<out_dir>_test``."""
    out_dir = Path(out_dir)
    return out_dir.with_name(out_dir.name + "_test")


test_set_dir.__test__ = False  # not a pytest test, despite its name


def _is_url(source: str) -> bool:
    return urllib.parse.urlparse(source).scheme in ("http", "https")


def _prepare_one(out_dir: Path, spec: ArchiveSpec, source: str | os.PathLike | None,
                 verify: bool, progress: bool, require_noise: bool,
                 download_dir: Path | None) -> Path:
    if source is not None and not _is_url(str(source)) and Path(source).is_dir():
        summary = require_layout(source, require_noise)
        if progress:
            print(f"Using {source} in place ({summary.describe()}); nothing copied.")
        return Path(source)

    if (out_dir / COMPLETE_MARKER).exists():
        summary = check_layout(out_dir, require_noise)
        if not summary.ok:
            raise DataSetupError(f"{out_dir} is marked complete but {'; '.join(summary.problems)}."
                                 " Nothing in it was changed; give another --out to prepare "
                                 "the data set afresh.")
        if progress:
            print(f"{out_dir} is already prepared ({summary.describe()}).")
        return out_dir
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise DataSetupError(
            f"{out_dir} exists but is not a finished data set (no {COMPLETE_MARKER} marker); "
            "nothing in it was changed. If it holds a Speech Commands folder you extracted "
            f"yourself, use it in place with --source {out_dir}; otherwise give another --out.")

    if source is None or _is_url(str(source)):
        url = spec.url if source is None else str(source)
        name = Path(urllib.parse.urlparse(url).path).name or spec.filename
        known = KNOWN_ARCHIVES.get(name) if verify else None
        archive = (download_dir or out_dir.parent) / name
        if archive.exists():
            if known:
                try:  # the full hash was checked before the file got this name
                    verify_archive(archive, known.num_bytes)
                except VerificationError as error:
                    raise VerificationError(f"{error} Delete it and run the command again to "
                                            "download afresh.") from None
            if progress:
                print(f"Using the archive downloaded earlier: {archive}")
        else:
            archive = download(url, archive, known and known.num_bytes, known and known.sha256,
                               progress)
    else:
        archive = Path(source)
        if not archive.is_file():
            raise MissingDataError(f"--source {source}: no such file or folder. Give an "
                                   "http(s) URL, a .tar.gz/.tgz/.zip archive or an extracted "
                                   "Speech Commands folder.")
        known = KNOWN_ARCHIVES.get(archive.name) if verify else None
        if known:
            try:
                verify_archive(archive, known.num_bytes, known.sha256, progress)
            except VerificationError as error:
                raise VerificationError(f"{error} It is named like the official archive but "
                                        "differs from it; pass --no_verify (verify=False) to "
                                        "use it anyway.") from None

    marker_info = {"source": str(source) if source is not None else spec.url,
                   "verified_sha256": known.sha256 if known else None}
    extract(archive, out_dir, require_noise, progress, marker_info)
    if progress:
        print(f"Extracted {archive.name} into {out_dir}; the archive can be deleted to save "
              "space.")
    return out_dir


def prepare(out_dir: str | os.PathLike | None = None, version: int = 2,
            source: str | os.PathLike | None = None, verify: bool = True,
            progress: bool = True, test_set: bool = False, *,
            test_source: str | os.PathLike | None = None,
            download_dir: str | os.PathLike | None = None) -> Path:
    """Make Speech Commands V1 or V2 available and return its folder.

    out_dir: where the data set is extracted (default ``data/speech_commands_v{version}``);
        returned at once if it already holds the ``.complete`` marker.
    source: None (official download), an http(s) URL, a local .tar.gz/.tgz/.zip, or an extracted
        folder (validated and returned as it is; out_dir is then not used).
    verify: check archives named like an official one against its size and SHA-256.
    test_set: also prepare the official test set in ``test_set_dir(out_dir)``, from
        ``test_source`` (same forms as ``source``) or the official address.
    download_dir: where archives are downloaded (default: beside out_dir).
    """
    if version not in (1, 2):
        raise DataSetupError(f"--version must be 1 or 2, not {version!r}.")
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(version)
    download_dir = Path(download_dir) if download_dir is not None else None
    data_dir = _prepare_one(out_dir, ARCHIVES[(version, "train")], source, verify, progress,
                            True, download_dir)
    if test_set:
        _prepare_one(test_set_dir(out_dir), ARCHIVES[(version, "test")], test_source, verify,
                     progress, False, download_dir)
    return data_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data_setup.speech_commands",
        description="Download, verify and extract the official Speech Commands data set "
                    "(or validate a local archive or folder).")
    parser.add_argument("--out", default=None,
                        help="data folder to create (default: data/speech_commands_v<version>)")
    parser.add_argument("--version", type=int, choices=(1, 2), default=2,
                        help="Speech Commands version (default: 2)")
    parser.add_argument("--source", default=None,
                        help="http(s) URL, local .tar.gz/.tgz/.zip, or an extracted folder "
                             "(used in place) instead of the official download")
    parser.add_argument("--no_verify", action="store_true",
                        help="skip the size/SHA-256 check of official-looking archives")
    parser.add_argument("--test_set", action="store_true",
                        help="also prepare the official test set in <out>_test")
    parser.add_argument("--test_source", default=None,
                        help="URL, archive or folder for the test set (default: official)")
    parser.add_argument("--download_dir", default=None,
                        help="where archives are downloaded (default: beside --out)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bars or notes")
    args = parser.parse_args(argv)

    out_dir = Path(args.out) if args.out else default_out_dir(args.version)
    try:
        data_dir = prepare(out_dir, args.version, args.source, verify=not args.no_verify,
                           progress=not args.no_progress, test_set=args.test_set,
                           test_source=args.test_source, download_dir=args.download_dir)
    except (DataSetupError, OSError) as error:  # OSError: e.g. no permission to create --out
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: nothing half-extracted was kept; a partial download (*.part) is "
              "resumed by running the same command again.", file=sys.stderr)
        return 130
    print(f"Speech Commands ready in {data_dir}: {check_layout(data_dir).describe()}")
    if args.test_set:
        test_dir = (Path(args.test_source) if args.test_source and Path(args.test_source).is_dir()
                    else test_set_dir(out_dir))
        summary = check_layout(test_dir, require_noise=False)
        print(f"Official test set in {test_dir}: {summary.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
