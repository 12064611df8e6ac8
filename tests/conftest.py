"""Shared pytest fixtures.

Real Speech Commands audio lives beside the checkout in ../shared/data (never copied into the
repository); tests that need it skip with a message saying where it was looked for. The fast,
always-available data set is the project's own offline TTS set, synthesized once per machine
into a cache folder (``KWSNB_TEST_CACHE``, default ``~/.cache/kwsnb/tests``).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("KWSNB_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
REAL_TRAIN_DIR = SHARED_DATA / "speech_commands_lite"
REAL_TEST_DIR = SHARED_DATA / "speech_commands_test_lite"
TEST_CACHE = Path(os.environ.get("KWSNB_TEST_CACHE", Path.home() / ".cache" / "kwsnb" / "tests"))


# `make test` runs the files on one pytest-xdist worker per core, in collection order: the
# longest go first (about 15, 5 and 4 minutes on two cores), so none starts late and ends the
# run alone while the other workers idle.
LONGEST_FILES = ("test_notebooks.py", "test_demo.py", "test_colab_replica.py")


def pytest_collection_modifyitems(items):
    rank = {name: place for place, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONGEST_FILES)))  # stable


# .ci/run sets it: there ../shared is part of the set-up, and a test that would skip for want of
# it fails instead (a skip would pass CI with the real-audio checks never run).
REQUIRE_SHARED = os.environ.get("KWSNB_REQUIRE_SHARED") == "1"


def require_shared(path: Path) -> Path:
    """``path`` (under ../shared), or a skip saying where it was looked for; a failure where
    ``KWSNB_REQUIRE_SHARED=1``."""
    if not path.exists():
        message = (f"{path} not found (set KWSNB_SHARED_DATA to the folder holding "
                   "speech_commands_lite/, or put ../shared beside the checkout)")
        if REQUIRE_SHARED:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def real_train_dir() -> Path:
    """../shared/data/speech_commands_lite: 12,853 real clips in the Speech Commands layout."""
    return require_shared(REAL_TRAIN_DIR)


@pytest.fixture(scope="session")
def real_test_dir() -> Path:
    """../shared/data/speech_commands_test_lite: official test-set layout (_silence_, _unknown_, words)."""
    return require_shared(REAL_TEST_DIR)


# Small enough to synthesize in seconds, big enough to train and split by speaker.
SYNTH_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
               "bed", "bird", "cat", "dog", "happy", "house")
SYNTH_SPEAKERS = 12


@pytest.fixture(scope="session")
def synthetic_dir() -> Path:
    """A small offline-TTS data set in the Speech Commands layout, cached between runs."""
    from data_setup import synthetic

    out = TEST_CACHE / f"synthetic-{SYNTH_SPEAKERS}spk-{len(SYNTH_WORDS)}w-v1"
    if not (out / ".complete").exists():
        synthetic.synthesize(out, words=SYNTH_WORDS, num_speakers=SYNTH_SPEAKERS, seed=0,
                             progress=False)
    return out


@pytest.fixture(scope="session")
def common_words_dir() -> Path:
    """A few of the ``--words common`` non-keywords (extra _unknown_ examples), cached."""
    from data_setup import synthetic

    out = TEST_CACHE / "common-6spk-5w-v1"
    if not (out / ".complete").exists():
        synthetic.synthesize(out, words=synthetic.COMMON_WORDS[:5], num_speakers=6, seed=1,
                             validation_percentage=0, testing_percentage=0, progress=False,
                             noise_seconds=5)
    return out
