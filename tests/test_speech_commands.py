"""data_setup.speech_commands on a tiny archive built here (no network: a local HTTP server)."""
from __future__ import annotations

import hashlib
import http.server
import io
import re
import shutil
import socket
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_setup import speech_commands as sc

WORDS = ("yes", "no", "up")
CLIPS_PER_WORD = 3
SAMPLE_RATE = 16000


def _tone_clips() -> list[np.ndarray]:
    """Fallback audio where ../shared/data is absent: short decaying tones."""
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    return [0.3 * np.sin(2 * np.pi * (200 + 150 * i) * t) * np.exp(-3 * t) for i in range(12)]


@pytest.fixture(scope="session")
def layout_dir(request, tmp_path_factory) -> Path:
    """A miniature Speech Commands folder (.wav, 16 kHz), from real clips where available."""
    try:
        real = request.getfixturevalue("real_train_dir")
    except pytest.skip.Exception:
        real = None
    root = tmp_path_factory.mktemp("layout") / "speech_commands_tiny"
    tones = iter(_tone_clips())
    validation = []
    for word in WORDS:
        (root / word).mkdir(parents=True)
        sources = sorted((real / word).glob("*.flac"))[:CLIPS_PER_WORD] if real else []
        for index in range(CLIPS_PER_WORD):
            if sources:
                audio, rate = sf.read(sources[index], dtype="float32")
                name = sources[index].stem + ".wav"
            else:
                audio, rate, name = next(tones), SAMPLE_RATE, f"0000000{index}_nohash_0.wav"
            sf.write(root / word / name, audio, rate, subtype="PCM_16")
        validation.append(f"{word}/{name}")
    noise_dir = root / sc.BACKGROUND_NOISE_DIR
    noise_dir.mkdir()
    noise_sources = sorted((real / sc.BACKGROUND_NOISE_DIR).glob("*.flac")) if real else []
    if noise_sources:
        noise, rate = sf.read(noise_sources[0], frames=SAMPLE_RATE, dtype="float32")
    else:
        noise, rate = np.random.default_rng(0).normal(0, 0.01, SAMPLE_RATE), SAMPLE_RATE
    sf.write(noise_dir / "white_noise.wav", noise, rate, subtype="PCM_16")
    (root / "validation_list.txt").write_text("\n".join(validation) + "\n")
    (root / "testing_list.txt").write_text("")
    (root / "LICENSE").write_text("CC BY 4.0\n")
    return root


def _tar_gz(folder: Path, archive: Path, arcname: str = ".") -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=arcname)
    return archive


@pytest.fixture(scope="session")
def archive(layout_dir, tmp_path_factory) -> Path:
    """The miniature set packed like the official archive (members at the top level)."""
    return _tar_gz(layout_dir, tmp_path_factory.mktemp("archive") / "tiny.tar.gz")


@pytest.fixture(scope="session")
def test_set_archive(layout_dir, tmp_path_factory) -> Path:
    """A test-set-like archive: word folders and _unknown_, no background noise."""
    path = tmp_path_factory.mktemp("test_archive") / "tiny_test.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for word in WORDS:
            tar.add(layout_dir / word, arcname=word)
        tar.add(layout_dir / "yes", arcname="_unknown_")
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------
# Local archives and folders


def test_local_archive_is_extracted_with_marker(archive, layout_dir, tmp_path):
    out = tmp_path / "sc"
    assert sc.prepare(out, source=archive, progress=False) == out
    summary = sc.check_layout(out)
    assert summary.ok and summary.has_complete_marker
    assert summary.clips_per_word == {word: CLIPS_PER_WORD for word in WORDS}
    assert summary.noise_files == ("white_noise.wav",)
    assert (out / "validation_list.txt").read_text() == \
        (layout_dir / "validation_list.txt").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sc"]  # no staging folder left
    # A second call sees the marker and returns without touching the archive.
    assert sc.prepare(out, source=tmp_path / "absent.tar.gz", progress=False) == out


def test_zip_with_a_wrapping_folder(layout_dir, tmp_path):
    zip_path = tmp_path / "wrapped.zip"
    with zipfile.ZipFile(zip_path, "w") as zip_file:
        for path in sorted(layout_dir.rglob("*")):
            zip_file.write(path, Path("speech_commands_tiny") / path.relative_to(layout_dir))
    out = sc.prepare(tmp_path / "sc", source=zip_path, progress=False)
    assert sc.check_layout(out).clips_per_word == {word: CLIPS_PER_WORD for word in WORDS}
    assert (out / sc.COMPLETE_MARKER).exists()


def test_extracted_folder_is_used_in_place(layout_dir, tmp_path):
    before = sorted(p.relative_to(layout_dir) for p in layout_dir.rglob("*"))
    assert sc.prepare(tmp_path / "unused", source=layout_dir, progress=False) == layout_dir
    assert sorted(p.relative_to(layout_dir) for p in layout_dir.rglob("*")) == before
    assert not (tmp_path / "unused").exists()


@pytest.mark.real_data
def test_real_subset_folder_is_accepted(real_train_dir, tmp_path):
    summary = sc.check_layout(real_train_dir)
    assert summary.ok, summary.problems
    assert summary.clips_per_word["yes"] > 800 and len(summary.noise_files) == 6
    assert sc.prepare(tmp_path / "unused", source=real_train_dir, progress=False) == real_train_dir


def test_missing_or_empty_folder_names_the_commands(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder in (empty, tmp_path / "absent"):
        assert not sc.check_layout(folder).ok
        with pytest.raises(sc.MissingDataError) as caught:
            sc.require_layout(folder)
        message = str(caught.value)
        assert str(folder) in message and "_background_noise_" in message
        assert f"python -m data_setup.speech_commands --out {folder}" in message
        assert f"python -m data_setup.synthetic --out {folder}" in message
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        sc.prepare(tmp_path / "sc", source=tmp_path / "nope.tar.gz", progress=False)


def test_half_extracted_folder_is_flagged(layout_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(layout_dir, copy)
    listed = (copy / "validation_list.txt").read_text().split()[0]
    (copy / listed).unlink()
    summary = sc.check_layout(copy)
    assert summary.listed_missing == (listed,)
    with pytest.raises(sc.MissingDataError, match="look.* incomplete"):
        sc.prepare(tmp_path / "sc", source=copy, progress=False)


def test_truncated_archive_gives_clear_error_and_installs_nothing(archive, tmp_path):
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    out = tmp_path / "sc"
    with pytest.raises(sc.ArchiveError, match="damaged or truncated"):
        sc.prepare(out, source=truncated, progress=False)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["truncated.tar.gz"]


def test_archive_without_speech_commands_layout(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "readme.txt").write_text("not audio")
    out = tmp_path / "sc"
    with pytest.raises(sc.ArchiveError, match="does not hold a Speech Commands layout"):
        sc.prepare(out, source=_tar_gz(notes, tmp_path / "notes.tar.gz"), progress=False)
    assert not out.exists()


def test_unsafe_tar_member_is_refused(layout_dir, tmp_path):
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(layout_dir, arcname=".")
        payload = b"owned"
        member = tarfile.TarInfo("../escaped.txt")
        member.size = len(payload)
        tar.addfile(member, io.BytesIO(payload))
    with pytest.raises(sc.ArchiveError, match="unsafe"):
        sc.prepare(tmp_path / "out" / "sc", source=evil, progress=False)
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "out" / "sc").exists()


def test_existing_folder_without_marker_is_not_complete(archive, layout_dir, tmp_path):
    out = tmp_path / "sc"
    (out / "yes").mkdir(parents=True)
    (out / "yes" / "a.wav").write_bytes((next((layout_dir / "yes").iterdir())).read_bytes())
    with pytest.raises(sc.DataSetupError, match=r"no \.complete marker.*--source"):
        sc.prepare(out, source=archive, progress=False)
    assert not (out / sc.COMPLETE_MARKER).exists()


def test_official_name_is_checked_against_official_size_and_hash(archive, tmp_path):
    lookalike = tmp_path / "speech_commands_v0.02.tar.gz"
    lookalike.write_bytes(archive.read_bytes())
    with pytest.raises(sc.VerificationError, match="expected 2,428,923,189.*--no_verify"):
        sc.prepare(tmp_path / "sc", source=lookalike, progress=False)
    assert not (tmp_path / "sc").exists()
    assert sc.prepare(tmp_path / "sc", source=lookalike, verify=False, progress=False).is_dir()


def test_verify_archive_detects_checksum_mismatch(archive):
    sc.verify_archive(archive, archive.stat().st_size, _sha256(archive))
    with pytest.raises(sc.VerificationError, match="SHA-256"):
        sc.verify_archive(archive, archive.stat().st_size, "0" * 64)


def test_known_archive_table_is_consistent():
    for (version, split), spec in sc.ARCHIVES.items():
        assert f"v0.0{version}" in spec.filename
        assert ("test_set" in spec.filename) == (split == "test")
        assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256) and spec.num_bytes > 10**7
        assert spec.url.startswith("http://download.tensorflow.org/data/")


# --------------------------------------------------------------------------------------------
# Downloads against a local HTTP server


class _ArchiveHandler(http.server.BaseHTTPRequestHandler):
    """Serves server.payload at any path; honours Range unless server.ignore_range; stops
    after server.cut_after bytes of body when set (a dropped connection)."""

    timeout = 5  # a stuck client cannot hold a handler thread for long

    def do_GET(self):  # noqa: N802 (http.server's naming)
        server = self.server
        server.requests.append(self.headers.get("Range"))
        payload = server.payload
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and not server.ignore_range:
            start = int(match.group(1))
            if start >= len(payload):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(payload)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
        else:
            self.send_response(200)
        body = payload[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.cut_after is not None:
            body = body[: server.cut_after]
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(archive):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ArchiveHandler)
    httpd.daemon_threads = True
    httpd.payload, httpd.ignore_range, httpd.cut_after, httpd.requests = \
        archive.read_bytes(), False, None, []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/tiny.tar.gz"
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_download_verifies_and_renames(server, archive, tmp_path):
    dest = tmp_path / "tiny.tar.gz"
    result = sc.download(server.url, dest, archive.stat().st_size, _sha256(archive),
                         progress=False)
    assert result == dest and dest.read_bytes() == archive.read_bytes()
    assert not (tmp_path / "tiny.tar.gz.part").exists()


def test_interrupted_download_resumes_from_part(server, archive, tmp_path):
    dest, part = tmp_path / "tiny.tar.gz", tmp_path / "tiny.tar.gz.part"
    cut = archive.stat().st_size // 3
    server.cut_after = cut
    with pytest.raises(sc.DownloadError, match=r"\.part .*kept.*resume"):
        sc.download(server.url, dest, archive.stat().st_size, _sha256(archive), progress=False)
    assert part.stat().st_size == cut and not dest.exists()

    server.cut_after = None
    sc.download(server.url, dest, archive.stat().st_size, _sha256(archive), progress=False)
    assert server.requests == [None, f"bytes={cut}-"]
    assert dest.read_bytes() == archive.read_bytes() and not part.exists()


def test_server_ignoring_range_restarts_cleanly(server, archive, tmp_path):
    dest, part = tmp_path / "tiny.tar.gz", tmp_path / "tiny.tar.gz.part"
    part.write_bytes(b"stale bytes that must not survive")
    server.ignore_range = True
    sc.download(server.url, dest, archive.stat().st_size, _sha256(archive), progress=False)
    assert server.requests == ["bytes=33-"]
    assert dest.read_bytes() == archive.read_bytes()


def test_part_already_complete_is_finished_without_refetching(server, archive, tmp_path):
    dest = tmp_path / "tiny.tar.gz"
    (tmp_path / "tiny.tar.gz.part").write_bytes(archive.read_bytes())
    sc.download(server.url, dest, sha256=_sha256(archive), progress=False)  # size unknown
    assert server.requests == [f"bytes={archive.stat().st_size}-"]  # answered 416
    assert dest.read_bytes() == archive.read_bytes()


def test_checksum_mismatch_moves_download_to_bad(server, archive, tmp_path):
    dest = tmp_path / "tiny.tar.gz"
    with pytest.raises(sc.VerificationError, match=r"corrupt.*\.bad"):
        sc.download(server.url, dest, archive.stat().st_size, "0" * 64, progress=False)
    assert (tmp_path / "tiny.tar.gz.bad").read_bytes() == archive.read_bytes()
    assert not dest.exists() and not (tmp_path / "tiny.tar.gz.part").exists()


def test_size_announced_by_server_must_match(server, archive, tmp_path):
    with pytest.raises(sc.VerificationError, match="on the server.*Nothing was written"):
        sc.download(server.url, tmp_path / "tiny.tar.gz", archive.stat().st_size + 1,
                    progress=False)
    assert not any(tmp_path.iterdir())


def test_connection_failure_keeps_part(tmp_path):
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    part = tmp_path / "tiny.tar.gz.part"
    part.write_bytes(b"x" * 1000)
    with pytest.raises(sc.DownloadError) as caught:
        sc.download(f"http://127.0.0.1:{port}/tiny.tar.gz", tmp_path / "tiny.tar.gz",
                    progress=False, timeout=5)
    message = str(caught.value)
    assert str(part) in message and "1,000 bytes" in message and "kept" in message
    assert "--source" in message
    assert part.read_bytes() == b"x" * 1000


def test_prepare_from_url_with_test_set(server, archive, test_set_archive, tmp_path):
    out = tmp_path / "data" / "sc"
    data_dir = sc.prepare(out, source=server.url, progress=False, test_set=True,
                          test_source=test_set_archive)
    assert data_dir == out and sc.check_layout(out).ok
    assert (tmp_path / "data" / "tiny.tar.gz").exists()  # the archive is kept beside the data
    test_dir = sc.test_set_dir(out)
    assert test_dir == tmp_path / "data" / "sc_test"
    summary = sc.check_layout(test_dir, require_noise=False)
    assert summary.ok and summary.has_complete_marker and "_unknown_" in summary.words


# --------------------------------------------------------------------------------------------
# Command line


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    assert sc.main(["--out", str(tmp_path / "sc"), "--source", str(tmp_path / "nope.tgz")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --source") and "Traceback" not in err


def test_cli_prepares_from_archive(archive, tmp_path, capsys):
    out = tmp_path / "sc"
    assert sc.main(["--out", str(out), "--source", str(archive), "--no_progress"]) == 0
    assert f"ready in {out}: 3 word folders, 9 clips, 1 background-noise" in capsys.readouterr().out
