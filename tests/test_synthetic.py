"""The offline TTS data set (data_setup.synthetic): layout, audio format, splits, determinism."""
from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from data_setup import speakers, synthetic

WORDS = ("yes", "no", "bed")
NUM_SPEAKERS = 6
NOISE_SECONDS = 3.0
FILE_NAME = re.compile(r"^[0-9a-f]{8}_nohash_0\.wav$")


def _make(out: Path, seed: int = 0, jobs: int = 1, words=WORDS, num_speakers=NUM_SPEAKERS) -> Path:
    return synthetic.synthesize(out, words=words, num_speakers=num_speakers, seed=seed,
                                progress=False, noise_seconds=NOISE_SECONDS, jobs=jobs)


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> Path:
    return _make(tmp_path_factory.mktemp("synthetic") / "tiny")


def _digests(folder: Path) -> dict[str, str]:
    """SHA-1 of every audio file and list, keyed by relative path."""
    files = [*folder.glob("*/*.wav"), folder / "validation_list.txt", folder / "testing_list.txt"]
    return {str(f.relative_to(folder)): hashlib.sha1(f.read_bytes()).hexdigest() for f in files}


def _kws_streaming_split(file_name: str, validation_percentage=10.0,
                         testing_percentage=10.0) -> str:
    """kws_streaming's input_data.which_set, restated independently of the module."""
    speaker = re.sub(r"_nohash_.*$", "", file_name)
    hashed = int(hashlib.sha1(speaker.encode()).hexdigest(), 16)
    percentage = (hashed % 2 ** 27) * (100.0 / (2 ** 27 - 1))
    if percentage < validation_percentage:
        return "validation"
    if percentage < validation_percentage + testing_percentage:
        return "testing"
    return "training"


def test_layout(tiny_set):
    folders = {p.name for p in tiny_set.iterdir() if p.is_dir()}
    assert folders == {*WORDS, "_background_noise_"}
    speaker_sets = []
    for word in WORDS:
        names = sorted(p.name for p in (tiny_set / word).iterdir())
        assert len(names) == NUM_SPEAKERS and all(FILE_NAME.match(n) for n in names), names
        speaker_sets.append({n.split("_")[0] for n in names})
    assert all(s == speaker_sets[0] for s in speaker_sets), "every speaker says every word"
    summary = json.loads((tiny_set / ".complete").read_text())
    assert summary["words"] == list(WORDS) and summary["num_speakers"] == NUM_SPEAKERS
    assert summary["num_clips"] == len(WORDS) * NUM_SPEAKERS
    assert not list(tiny_set.parent.glob(".*partial")), "the staging folder was left behind"


def test_clips_are_16khz_mono_int16_one_second_centred_and_audible(tiny_set):
    for path in sorted(tiny_set.glob("[!_]*/*.wav")):
        info = soundfile.info(path)
        assert (info.samplerate, info.channels, info.subtype, info.frames) == (
            16000, 1, "PCM_16", 16000), path
        audio, _ = soundfile.read(path, dtype="float32")
        rms = float(np.sqrt(np.mean(audio ** 2)))
        assert 0.004 < rms < 0.2, (path, rms)  # real keyword clips: median RMS 0.045
        energy = audio.astype(np.float64) ** 2
        centroid = float(np.sum(energy * np.arange(len(audio))) / np.sum(energy)) / len(audio)
        assert 0.3 < centroid < 0.7, (path, centroid)
        # Speech is centred with silence around it: the edges hold only the quiet noise floor.
        edge_rms = np.sqrt(np.mean(np.concatenate([audio[:800], audio[-800:]]) ** 2))
        assert edge_rms < 0.2 * rms, (path, edge_rms, rms)


def test_lists_hold_whole_speakers_and_agree_with_the_hash_split(tiny_set):
    lists = {}
    for split in ("validation", "testing"):
        lines = (tiny_set / f"{split}_list.txt").read_text().splitlines()
        assert lines, f"{split}_list.txt is empty"
        assert all((tiny_set / line).is_file() for line in lines)
        speakers = {line.split("/")[1].split("_")[0] for line in lines}
        # Whole speakers: each listed speaker's every word is listed.
        assert sorted(lines) == sorted(f"{w}/{s}_nohash_0.wav" for s in speakers for w in WORDS)
        lists[split] = speakers
    assert not lists["validation"] & lists["testing"]
    all_speakers = {p.name.split("_")[0] for p in (tiny_set / WORDS[0]).iterdir()}
    assert all_speakers - lists["validation"] - lists["testing"], "no training speaker left"
    for speaker in all_speakers:
        expected = ("validation" if speaker in lists["validation"] else
                    "testing" if speaker in lists["testing"] else "training")
        assert _kws_streaming_split(f"{speaker}_nohash_0.wav") == expected


def test_background_noise_files(tiny_set):
    folder = tiny_set / "_background_noise_"
    wavs = sorted(folder.glob("*.wav"))
    names = {p.stem for p in wavs}
    assert {"white_noise", "pink_noise", "brown_noise"} <= names and len(names) >= 6
    levels = []
    for path in wavs:
        info = soundfile.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16"), path
        assert info.frames == int(NOISE_SECONDS * 16000), path
        audio, _ = soundfile.read(path, dtype="float32")
        levels.append(float(np.sqrt(np.mean(audio ** 2))))
        assert np.max(np.abs(audio)) < 1.0, path
    assert min(levels) > 0.001 and max(levels) / min(levels) > 3, levels  # audible, and varied


def test_same_seed_gives_identical_files_whatever_the_process_count(tiny_set, tmp_path):
    again = _make(tmp_path / "again", jobs=2)
    assert _digests(again) == _digests(tiny_set)


def test_different_seed_gives_different_audio(tiny_set, tmp_path):
    other = _make(tmp_path / "other", seed=1)
    assert set(_digests(other).values()).isdisjoint(_digests(tiny_set).values())


def test_rerun_on_a_complete_set_returns_at_once_without_rewriting(tiny_set):
    before = {p: p.stat().st_mtime_ns for p in tiny_set.rglob("*")}
    started = time.perf_counter()
    assert _make(tiny_set) == tiny_set
    assert time.perf_counter() - started < 0.5
    assert {p: p.stat().st_mtime_ns for p in tiny_set.rglob("*")} == before


def test_existing_folder_with_other_content_is_refused(tiny_set, tmp_path):
    with pytest.raises(FileExistsError, match="seed"):
        _make(tiny_set, seed=5)
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a complete synthetic set"):
        _make(stranger)


@pytest.mark.parametrize("words, message", [
    ([], "empty"),
    (["yes", "no!"], "no!"),
    (["yes", "Go"], "Go"),
    (["yes", "turn left"], "turn left"),
    (["yes", "yes"], "more than once"),
    (["yes", "_silence_"], "_silence_"),
])
def test_bad_word_lists_are_refused_clearly(tmp_path, words, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        _make(tmp_path / "bad", words=words)
    assert not (tmp_path / "bad").exists()


def test_too_few_speakers_for_the_splits_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no training speaker"):
        _make(tmp_path / "few", num_speakers=2)


def test_speakers_are_deterministic_and_extend_with_more_speakers():
    small = synthetic.make_speakers(20, seed=3)
    large = synthetic.make_speakers(50, seed=3)
    assert small == synthetic.make_speakers(20, seed=3)
    assert [s.voice for s in small] == [s.voice for s in large[:20]]
    assert [s.rate_wpm for s in small] == [s.rate_wpm for s in large[:20]]
    splits = [s.split for s in large]
    assert (splits.count("validation"), splits.count("testing")) == (5, 5)
    ids = [s.speaker_id for s in large]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"[0-9a-f]{8}", i) for i in ids)
    assert len({s.voice for s in large}) == len(large), "voices repeat only past the pool size"
    female = set(speakers.FEMALE_VARIANTS)
    assert all((s.voice.partition("+")[2] in female) == (s.index % 2 == 0) for s in large)


def test_cli_writes_and_summarizes(tmp_path, capsys):
    out = tmp_path / "cli"
    assert synthetic.main(["--out", str(out), "--words", "up,down", "--speakers", "3",
                           "--noise_seconds", "1", "--jobs", "1", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert str(out.resolve()) in printed and "6 clips = 2 words x 3 speakers" in printed
    with pytest.raises(SystemExit) as exit_info:
        synthetic.main(["--out", str(tmp_path / "x"), "--words", "up,Down!", "--quiet"])
    assert exit_info.value.code == 2
    assert "Down!" in capsys.readouterr().err


def test_conftest_fixture_set(synthetic_dir):
    summary = json.loads((synthetic_dir / ".complete").read_text())
    assert summary["num_speakers"] == 12 and len(summary["words"]) == 16
    for word in summary["words"]:
        assert len(list((synthetic_dir / word).glob("*_nohash_0.wav"))) == 12
    assert (synthetic_dir / "validation_list.txt").read_text().strip()
    assert (synthetic_dir / "testing_list.txt").read_text().strip()
