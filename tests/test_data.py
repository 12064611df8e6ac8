"""Tests for kwsnb.data: indexing, splits, labels, loading bad files, augmentation, tf.data."""
from __future__ import annotations

import hashlib
import math
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile
import tensorflow as tf

from kwsnb import data

TWELVE_LABELS = [data.SILENCE_LABEL, data.UNKNOWN_WORD_LABEL, "yes", "no", "up", "down", "left",
                 "right", "on", "off", "stop", "go"]
SC_LITE_9_WORDS = ("yes", "no", "up", "down", "left", "right", "stop")
SC_LITE_9_LABELS = [data.SILENCE_LABEL, data.UNKNOWN_WORD_LABEL, *SC_LITE_9_WORDS]


@pytest.fixture(autouse=True)
def clip_cache(tmp_path_factory, monkeypatch):
    """Decoded-clip caches go to a per-session temporary folder, not the user's cache."""
    folder = tmp_path_factory.getbasetemp() / "clip_cache"
    monkeypatch.setenv("KWSNB_CACHE_DIR", str(folder))
    return folder


def _load(folder, wanted_words=data.DEFAULT_WANTED_WORDS, **kwargs) -> data.SpeechCommands:
    return data.SpeechCommands(folder, wanted_words, progress=False, **kwargs)


def _copy_words(source: Path, target: Path, words, noise_files: int = 1) -> Path:
    """A small copy of a data folder: some word folders and a few noise files, no split lists."""
    for word in words:
        shutil.copytree(source / word, target / word)
    noise = sorted((source / data.BACKGROUND_NOISE_DIR_NAME).glob("*.wav"))[:noise_files]
    (target / data.BACKGROUND_NOISE_DIR_NAME).mkdir(parents=True)
    for path in noise:
        shutil.copy(path, target / data.BACKGROUND_NOISE_DIR_NAME / path.name)
    return target


def _speaker(path) -> str:
    return Path(path).name.split("_nohash_")[0]


# ---------------------------------------------------------------------------------------------
# Real Speech Commands subsets (../shared/data)
# ---------------------------------------------------------------------------------------------

@pytest.mark.real_data
def test_scan_real_training_folder(real_train_dir):
    # The folder as of 2026-12 (../shared/data/README.md): 12,853 clips of 32 words (was 6,513
    # of 30), every validation speaker's clip listed (1,462; was 675).
    folder = data.scan_folder(real_train_dir)
    assert folder.num_clips == 12853
    assert len(folder.words) == 32
    assert len(folder.noise_files) == 6
    assert len(folder.split_lists["validation"]) == 1462
    assert not folder.split_lists["testing"]


@pytest.mark.real_data
def test_real_test_folder_gives_twelve_labels(real_test_dir):
    audio, labels = data.read_test_folder(real_test_dir, TWELVE_LABELS, progress=False)
    assert audio.shape == (2172, 16000) and audio.dtype == np.float32
    assert sorted(set(labels.tolist())) == list(range(12))
    assert np.abs(audio).max() <= 1.0


@pytest.mark.real_data
def test_sc_lite_9_test_folder_leaves_out_go_on_off(real_test_dir):
    with pytest.raises(ValueError, match="go, off, on"):
        data.read_test_folder(real_test_dir, SC_LITE_9_LABELS, progress=False)
    audio, labels = data.read_test_folder(real_test_dir, SC_LITE_9_LABELS,
                                          exclude=("go", "on", "off"), progress=False)
    left_out = sum(len(list((real_test_dir / w).iterdir())) for w in ("go", "on", "off"))
    assert len(audio) == len(labels) == 2172 - left_out
    assert sorted(set(labels.tolist())) == list(range(9))


@pytest.mark.real_data
def test_sc_lite_9_training_folder(real_train_dir):
    dataset = _load(real_train_dir, SC_LITE_9_WORDS)
    assert dataset.labels == SC_LITE_9_LABELS
    assert dataset.split_by == "lists"  # validation_list.txt is non-empty, testing_list.txt empty
    counts = dataset.label_counts
    listed_keywords = sum(1 for entry in dataset.folder.split_lists["validation"]
                          if entry.split("/")[0] in SC_LITE_9_WORDS)
    assert sum(counts["validation"][w] for w in SC_LITE_9_WORDS) == listed_keywords
    assert counts["validation"][data.SILENCE_LABEL] == math.ceil(listed_keywords * 0.1)
    assert dataset.split_sizes["testing"] == 0
    with pytest.raises(ValueError, match="read_test_folder"):
        dataset.dataset("testing")
    audio, labels = next(iter(dataset.dataset("training", batch_size=32)))
    assert audio.shape == (32, 16000) and audio.dtype == tf.float32 and labels.dtype == tf.int32


# ---------------------------------------------------------------------------------------------
# Labels and splits (synthetic TTS set)
# ---------------------------------------------------------------------------------------------

def test_labels_for_twelve_and_custom_word_lists(synthetic_dir):
    assert _load(synthetic_dir).labels == TWELVE_LABELS
    custom = _load(synthetic_dir, "cat, Dog,bird")
    assert custom.labels == [data.SILENCE_LABEL, data.UNKNOWN_WORD_LABEL, "cat", "dog", "bird"]
    ids = {label: i for i, label in enumerate(custom.labels)}
    for split in data.SPLITS:
        if custom.split_sizes[split]:
            _, labels = custom.arrays(split)
            assert set(labels.tolist()) <= set(ids.values())


def test_all_words_without_silence_and_unknown_gives_just_the_words(synthetic_dir):
    words = sorted(data.scan_folder(synthetic_dir).words)
    dataset = _load(synthetic_dir, words, silence_percentage=0, unknown_percentage=0)
    assert dataset.labels == words  # the seed's 35-label recipes: labels are exactly the words
    assert sum(dataset.split_sizes.values()) == data.scan_folder(synthetic_dir).num_clips


def test_which_set_is_the_seeds_speaker_hash():
    def by_hand(speaker):  # input_data.which_set, written out
        value = int(hashlib.sha1(speaker.encode()).hexdigest(), 16)
        return (value % (2**27 - 1 + 1)) * (100.0 / (2**27 - 1))

    known = {"099d52ad": ("validation", 9.288), "5e3dde6b": ("testing", 10.988),
             "004ae714": ("training", 79.575)}
    for speaker, (expected, percentage) in known.items():
        assert by_hand(speaker) == pytest.approx(percentage, abs=1e-3)
        for utterance in range(3):
            for name in (f"{speaker}_nohash_{utterance}.wav", f"yes/{speaker}_nohash_{utterance}.flac"):
                assert data.which_set(name, 10, 10) == expected
    assert data.which_set("5e3dde6b_nohash_0.wav", 10, 0) == "training"  # 10.988 >= 10 + 0
    assert data.which_set("099d52ad_nohash_0.wav", 5, 10) == "testing"   # 5 <= 9.288 < 15


def test_hash_split_keeps_each_speaker_in_one_split(synthetic_dir):
    first = _load(synthetic_dir, split_by="hash")
    second = _load(synthetic_dir, split_by="hash")
    assert first.label_counts == second.label_counts  # stable
    split_of_speaker = {}
    for word, files in first.folder.words.items():
        for path in files:
            split = data.which_set(path.name, 10, 10)
            assert split_of_speaker.setdefault(_speaker(path), split) == split
    assert set(split_of_speaker.values()) == set(data.SPLITS)


def test_list_split_reads_the_list_files(synthetic_dir, tmp_path):
    folder = _copy_words(synthetic_dir, tmp_path / "set", ["yes", "no", "cat"])
    speakers = sorted({_speaker(p) for p in (folder / "yes").iterdir()})
    # List the .wav files under a .flac name: entries match by word/stem, not by extension.
    (folder / "validation_list.txt").write_text(
        "".join(f"{w}/{speakers[0]}_nohash_0.flac\n" for w in ("yes", "no", "cat")))
    (folder / "testing_list.txt").write_text(f"yes/{speakers[1]}_nohash_0.wav\n")
    dataset = _load(folder, "yes,no")
    assert dataset.split_by == "lists"
    counts = dataset.label_counts
    assert (counts["validation"]["yes"], counts["validation"]["no"]) == (1, 1)
    assert counts["validation"][data.UNKNOWN_WORD_LABEL] == 1  # ceil(10% of 2) = 1 unknown
    assert (counts["testing"]["yes"], counts["testing"]["no"]) == (1, 0)
    assert counts["training"]["yes"] == len(speakers) - 2
    with pytest.raises(data.MissingDataError, match="split_by='hash'"):
        _load(_copy_words(synthetic_dir, tmp_path / "nolists", ["yes"]), "yes", split_by="lists")


def test_silence_and_unknown_counts_follow_the_seed(synthetic_dir):
    dataset = _load(synthetic_dir, "yes,no,up", silence_percentage=20, unknown_percentage=30)
    for split, counts in dataset.label_counts.items():
        known = counts["yes"] + counts["no"] + counts["up"]
        available_unknown = sum(1 for word, files in dataset.folder.words.items()
                                if word not in ("yes", "no", "up") for p in files
                                if dataset._split_of(word, p) == split)
        assert counts[data.SILENCE_LABEL] == math.ceil(known * 20 / 100)
        assert counts[data.UNKNOWN_WORD_LABEL] == min(math.ceil(known * 30 / 100),
                                                      available_unknown)


def test_validation_silence_is_zeros_unless_eval_silence_noise(synthetic_dir):
    audio, labels = _load(synthetic_dir).arrays("validation")
    silence = audio[labels == 0]
    assert len(silence) and not silence.any()
    noisy = _load(synthetic_dir, eval_silence_noise=True, silence_volume=0.5)
    audio, labels = noisy.arrays("validation")
    again, _ = noisy.arrays("validation")
    assert (np.sqrt((audio[labels == 0] ** 2).mean(axis=1)) > 0).all()
    np.testing.assert_array_equal(audio, again)  # fixed, so validation scores are comparable


def test_extra_unknown_dir_adds_training_unknowns_only(synthetic_dir, common_words_dir):
    plain = _load(synthetic_dir, "yes,no,up")
    extra = _load(synthetic_dir, "yes,no,up", extra_unknown_dir=common_words_dir,
                  extra_unknown_percentage=40)
    known = sum(plain.label_counts["training"][w] for w in ("yes", "no", "up"))
    added = math.ceil(known * 40 / 100)
    assert added <= 30  # the fixture's 5 words x 6 speakers
    assert extra.label_counts["training"][data.UNKNOWN_WORD_LABEL] == \
        plain.label_counts["training"][data.UNKNOWN_WORD_LABEL] + added
    for split in ("validation", "testing"):  # the real data's splits stay as they are
        np.testing.assert_array_equal(extra.arrays(split)[0], plain.arrays(split)[0])
    # The added rows are clips of the extra folder, labelled _unknown_.
    audio, labels = extra.arrays("training")
    extra_clips = {hashlib.sha1((data.load_clip(path) * 32768).round().astype(np.int16)
                                .tobytes()).hexdigest()
                   for files in data.scan_folder(common_words_dir).words.values()
                   for path in files}
    tail = (audio[-added:] * 32768).round().astype(np.int16)
    assert all(hashlib.sha1(clip.tobytes()).hexdigest() in extra_clips for clip in tail)
    assert (labels[-added:] == 1).all()
    assert extra.extra_unknown_dir == common_words_dir.resolve()


def test_extra_unknown_dir_skips_keyword_folders(synthetic_dir, tmp_path):
    """A TTS Speech Commands folder (keywords and all) can feed _unknown_: its folders of the
    wanted words are skipped, so no keyword clip is ever labelled _unknown_."""
    extra = _load(synthetic_dir, "yes,no,up", extra_unknown_dir=synthetic_dir,
                  extra_unknown_percentage=50)
    plain = _load(synthetic_dir, "yes,no,up")
    added = extra.label_counts["training"][data.UNKNOWN_WORD_LABEL] - \
        plain.label_counts["training"][data.UNKNOWN_WORD_LABEL]
    assert added > 0
    audio, labels = extra.arrays("training")
    keyword_clips = {hashlib.sha1((data.load_clip(path) * 32768).round().astype(np.int16)
                                  .tobytes()).hexdigest()
                     for word, files in data.scan_folder(synthetic_dir).words.items()
                     if word in ("yes", "no", "up") for path in files}
    tail = (audio[-added:] * 32768).round().astype(np.int16)
    assert not any(hashlib.sha1(clip.tobytes()).hexdigest() in keyword_clips for clip in tail)
    only_keywords = tmp_path / "only_keywords"
    (only_keywords / "yes").mkdir(parents=True)
    for path in sorted(data.scan_folder(synthetic_dir).words["yes"])[:2]:
        (only_keywords / "yes" / path.name).write_bytes(path.read_bytes())
    with pytest.raises(ValueError, match=r"only_keywords has no word folders other than the keywords \(yes\)"):
        _load(synthetic_dir, "yes,no,up", extra_unknown_dir=only_keywords,
              extra_unknown_percentage=10)


def test_tts_unknown_words_are_spoken_once_and_added_as_training_unknowns(synthetic_dir,
                                                                           clip_cache, monkeypatch):
    """--tts_unknown_words on,off: offline TTS speech of those words (made once into the kwsnb
    cache) becomes _unknown_ training examples, as --extra_unknown_dir would add them."""
    from kwsnb.data import tts_unknown

    monkeypatch.setattr(tts_unknown, "TTS_SPEAKERS", 8)  # seconds, not the recipe's 400 speakers
    plain = _load(synthetic_dir, "yes,no,up")
    spoken = _load(synthetic_dir, "yes,no,up", tts_unknown_words="off, on",
                   extra_unknown_percentage=20)
    folder = spoken.extra_unknown_dir
    assert folder == (clip_cache / "tts" / "off-on_8spk_seed0_v1").resolve()
    assert sorted(data.scan_folder(folder).words) == ["off", "on"]
    known = sum(plain.label_counts["training"][w] for w in ("yes", "no", "up"))
    added = math.ceil(known * 20 / 100)
    assert 0 < added <= 16  # 2 words x 8 speakers
    assert spoken.label_counts["training"][data.UNKNOWN_WORD_LABEL] == \
        plain.label_counts["training"][data.UNKNOWN_WORD_LABEL] + added
    audio, labels = spoken.arrays("training")
    tts_clips = {hashlib.sha1((data.load_clip(path) * 32768).round().astype(np.int16)
                              .tobytes()).hexdigest()
                 for files in data.scan_folder(folder).words.values() for path in files}
    tail = (audio[-added:] * 32768).round().astype(np.int16)
    assert all(hashlib.sha1(clip.tobytes()).hexdigest() in tts_clips for clip in tail)
    assert (labels[-added:] == 1).all()
    for split in ("validation", "testing"):  # the real data's splits stay as they are
        np.testing.assert_array_equal(spoken.arrays(split)[0], plain.arrays(split)[0])
    # Made once: a second data set reuses the folder as it is.
    made = (folder / ".complete").stat().st_mtime_ns
    _load(synthetic_dir, "yes,no", tts_unknown_words="on,off", extra_unknown_percentage=5)
    assert (folder / ".complete").stat().st_mtime_ns == made
    # A broken cache folder is named, with what to do.
    (folder / ".complete").unlink()
    with pytest.raises(FileExistsError, match="off-on_8spk_seed0_v1 is not usable.*delete it"):
        _load(synthetic_dir, "yes,no", tts_unknown_words="on,off", extra_unknown_percentage=5)


@pytest.mark.parametrize("kwargs, message", [
    ({"tts_unknown_words": "on,up", "extra_unknown_percentage": 5}, r"up: keywords"),
    ({"tts_unknown_words": "on", "extra_unknown_percentage": 0},
     "needs extra_unknown_percentage above 0"),
    ({"tts_unknown_words": "on", "extra_unknown_percentage": 5, "extra_unknown_dir": "x"},
     "give one of them"),
    ({"tts_unknown_words": "on,of f", "extra_unknown_percentage": 5}, "'of f': not words"),
])
def test_tts_unknown_words_refuses_what_it_cannot_use(synthetic_dir, kwargs, message):
    with pytest.raises(ValueError, match=message):
        _load(synthetic_dir, "yes,no,up", **kwargs)


def test_unknown_with_replacement_repeats_the_training_pool_only(synthetic_dir):
    plain = _load(synthetic_dir, "yes,no,up", unknown_percentage=1000)
    repeated = _load(synthetic_dir, "yes,no,up", unknown_percentage=1000,
                     unknown_with_replacement=True)
    known = sum(plain.label_counts["training"][w] for w in ("yes", "no", "up"))
    pool = plain.label_counts["training"][data.UNKNOWN_WORD_LABEL]
    assert pool < known * 10  # the fixture's pool is short of 1000%
    assert repeated.label_counts["training"][data.UNKNOWN_WORD_LABEL] == known * 10
    audio, labels = repeated.arrays("training")
    distinct = {clip.tobytes() for clip in audio[labels == 1]}
    assert len(distinct) == pool  # the same clips, repeated
    for split in ("validation", "testing"):
        np.testing.assert_array_equal(repeated.arrays(split)[0], plain.arrays(split)[0])


def test_extra_unknown_dir_says_when_it_runs_short(synthetic_dir, common_words_dir):
    with pytest.warns(UserWarning, match="30 training clips, fewer than"):
        short = _load(synthetic_dir, "yes,no,up", extra_unknown_dir=common_words_dir,
                      extra_unknown_percentage=500)
    plain = _load(synthetic_dir, "yes,no,up")
    assert short.label_counts["training"][data.UNKNOWN_WORD_LABEL] == \
        plain.label_counts["training"][data.UNKNOWN_WORD_LABEL] + 30
    with pytest.raises(ValueError, match="needs an _unknown_ label"):
        _load(synthetic_dir, "yes,no", silence_percentage=0, unknown_percentage=0,
              extra_unknown_dir=common_words_dir, extra_unknown_percentage=10)


def test_common_words_are_neither_keywords_nor_sound_alikes():
    from data_setup import synthetic

    common = synthetic.COMMON_WORDS
    assert 200 <= len(common) <= 400 and len(set(common)) == len(common)
    keywords = set(synthetic.SPEECH_COMMANDS_V2_WORDS)
    assert not keywords & set(common)
    assert not {"know", "write", "to", "too", "for", "ate", "won", "of"} & set(common)
    assert not [w for w in common if any(w.startswith(k) for k in keywords)]
    assert synthetic._check_words("common") == common


# ---------------------------------------------------------------------------------------------
# Augmentation
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def speech(synthetic_dir):
    """16 synthetic keyword clips (float32 [16, 16000])."""
    files = [data.scan_folder(synthetic_dir).words[w][i] for w in ("yes", "stop") for i in range(8)]
    return np.stack([data.load_clip(f) for f in files])


def test_training_batches_shape_dtype_range_and_seed(synthetic_dir):
    dataset = _load(synthetic_dir)
    batches = dataset.dataset("training", batch_size=20)
    audio, labels = next(iter(batches))
    assert audio.shape == (20, 16000) and audio.dtype == tf.float32
    assert labels.shape == (20,) and labels.dtype == tf.int32
    assert float(tf.reduce_max(tf.abs(audio))) <= 1.0
    again, _ = next(iter(dataset.dataset("training", batch_size=20)))
    np.testing.assert_array_equal(audio.numpy(), again.numpy())  # same seed, same batch
    other, _ = next(iter(dataset.dataset("training", batch_size=20, seed=1)))
    assert not np.array_equal(audio.numpy(), other.numpy())
    plain = dataset.dataset("validation", batch_size=1000)
    (audio, labels), = list(plain)  # one pass, one batch
    expected_audio, expected_labels = dataset.arrays("validation")
    np.testing.assert_array_equal(audio.numpy(), expected_audio)
    np.testing.assert_array_equal(labels.numpy(), expected_labels)


def test_a_second_data_set_in_the_same_process_augments_after_the_first_is_gone(synthetic_dir):
    # A notebook that reads its data twice: the first set's noise variables are deleted.
    import gc

    def first_batch():
        dataset = _load(synthetic_dir, wanted_words="yes,no")
        audio, _ = next(iter(dataset.dataset("training", batch_size=8)))
        return audio.numpy()

    first = first_batch()
    gc.collect()
    np.testing.assert_array_equal(first_batch(), first)


def test_time_shift_shifts_with_zero_fill(speech):
    shifts = np.array([0, 1, -1, 1599, -1600, 800, -800, 5] * 2, np.int32)
    shifted = data.time_stretch_and_shift(speech, np.ones(16), shifts).numpy()
    for clip, out, shift in zip(speech, shifted, shifts):
        expected = np.zeros_like(clip)
        if shift >= 0:
            expected[shift:] = clip[:16000 - shift]
        else:
            expected[:shift] = clip[-shift:]
        np.testing.assert_array_equal(out, expected)
    # Through augment_audio (shift only): each clip is its input moved by some U[-1600, 1600).
    out = data.augment_audio(speech, np.zeros(16, bool), None, [3, 4], resample=0,
                             time_shift_samples=1600, background_frequency=0).numpy()
    found = []
    for clip, result in zip(speech, out):
        correlation = np.correlate(np.pad(result, 1600), clip, mode="valid")
        shift = int(np.argmax(correlation)) - 1600
        assert -1600 <= shift < 1600
        reference = data.time_stretch_and_shift(clip[None], [1.0], [shift]).numpy()[0]
        np.testing.assert_array_equal(result, reference)
        found.append(shift)
    assert len(set(found)) > 8  # really random per clip


def test_resample_matches_the_seeds_resize_then_crop_or_pad(speech):
    factors = np.array([0.85, 1.15, 1.0, 0.9, 1.1, 0.97, 1.03, 0.86] * 2, np.float32)
    shifts = np.array([0] * 8 + [700, -300, 0, 1200, -1500, 3, -9, 100], np.int32)
    result = data.time_stretch_and_shift(speech, factors, shifts).numpy()
    for clip, out, factor, shift in zip(speech, result, factors, shifts):
        stretched = int(np.float32(16000) * factor)
        image = tf.image.resize(clip[None, :, None, None], (stretched, 1))
        reference = tf.image.resize_with_crop_or_pad(image, 16000, 1).numpy()[0, :, 0, 0]
        reference = np.roll(reference, shift)
        reference[:max(shift, 0)] = 0
        reference[16000 + min(shift, 0):] = 0
        np.testing.assert_allclose(out, reference, atol=1e-6)
        if factor < 1 and shift == 0:  # shorter after the stretch: centre-padded with zeros
            pad = (16000 - stretched) // 2
            assert not out[:pad].any() and not out[pad + stretched:].any()
    # XLA (what tf.data uses) rounds source positions near 16000 a little differently (float32
    # ulp ~1e-3 sample), which moves a sample by at most ~1e-3 x its local slope.
    compiled = tf.function(data.time_stretch_and_shift, jit_compile=True)
    np.testing.assert_allclose(compiled(speech, factors, shifts).numpy(), result, atol=2e-4)


def test_background_noise_probability_and_gain():
    # Zero clips plus all-ones noise: each output clip is exactly its noise gain.
    noise = data.BackgroundNoise.from_arrays([np.ones(24000, np.float32)])
    clips = np.zeros((2000, 1600), np.float32)
    out = data.augment_audio(clips, np.zeros(2000, bool), noise, [7, 8], resample=0,
                             time_shift_samples=0, background_frequency=0.8,
                             background_volume=0.1).numpy()
    gains = out[:, 0]
    assert np.all(out == gains[:, None])
    assert np.mean(gains > 0) == pytest.approx(0.8, abs=0.04)
    assert gains.max() < 0.1 and np.mean(gains[gains > 0]) == pytest.approx(0.05, abs=0.005)


def test_silence_is_noise_only_and_levels_can_be_raised(speech, synthetic_dir):
    noise = data.BackgroundNoise.from_files(data.scan_folder(synthetic_dir).noise_files, rms=0.1)
    assert np.allclose([np.sqrt(np.mean(noise.samples[s:s + n] ** 2))
                        for s, n in zip(noise.starts, noise.lengths)], 0.1, rtol=1e-3)
    silence = np.ones(16, bool)
    out = data.augment_audio(speech, silence, None, [1, 2]).numpy()
    assert not out.any()  # speech muted, no noise to add
    out = data.augment_audio(speech, silence, noise, [1, 2], background_frequency=1.0,
                             silence_volume=2.0).numpy()
    rms = np.sqrt((out ** 2).mean(axis=1))
    assert (rms > 0).all() and rms.max() > 0.05  # far above the seed's 0.1 x quiet-noise level


def test_spec_augment_masks_only_in_training():
    features = tf.ones([64, 49, 40])
    assert data.spec_augment(features, training=False) is features
    tf.random.set_seed(0)
    masked = data.spec_augment(features, training=True, time_masks_number=2,
                               time_mask_max_size=10, frequency_masks_number=2,
                               frequency_mask_max_size=5).numpy()
    assert set(np.unique(masked)) <= {0.0, 1.0}
    zero_frames = (masked == 0).all(axis=2).sum(axis=1)
    zero_coefficients = (masked == 0).all(axis=1).sum(axis=1)
    assert zero_frames.max() <= 2 * 9 and zero_coefficients.max() <= 2 * 4
    assert zero_frames.mean() > 2 and zero_coefficients.mean() > 1
    # Everything not in a masked frame or coefficient is kept.
    kept = ~((masked == 0).all(axis=2)[:, :, None] | (masked == 0).all(axis=1)[:, None, :])
    assert (masked[kept] == 1).all()
    in_graph = tf.function(lambda x, t: data.spec_augment(x, training=t))
    assert (in_graph(features, tf.constant(False)).numpy() == 1).all()


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------

def _write_bad_files(folder: Path, reference: np.ndarray) -> dict[str, Path]:
    files = {
        "corrupt": folder / "yes" / "badc0de1_nohash_0.wav",
        "zero_bytes": folder / "yes" / "badc0de2_nohash_0.wav",
        "no_samples": folder / "no" / "badc0de3_nohash_0.flac",
        "stereo": folder / "no" / "badc0de4_nohash_0.flac",
        "rate_44k": folder / "yes" / "badc0de5_nohash_0.wav",
        "two_seconds": folder / "cat" / "badc0de6_nohash_0.flac",
    }
    files["corrupt"].write_bytes(b"RIFF\x00\x00\x00\x00WAVEthis is not audio" * 10)
    files["zero_bytes"].write_bytes(b"")
    soundfile.write(files["no_samples"], np.zeros(0, np.int16), 16000)
    soundfile.write(files["stereo"], np.stack([reference, -0.5 * reference], axis=1), 16000,
                    subtype="PCM_16")
    import soxr

    soundfile.write(files["rate_44k"], soxr.resample(reference, 16000, 44100), 44100,
                    subtype="PCM_16")
    soundfile.write(files["two_seconds"], np.concatenate([reference, reference[::-1]]), 16000,
                    subtype="PCM_16")
    return files


def test_bad_audio_files_are_named_and_skipped_or_fixed(synthetic_dir, tmp_path):
    folder = _copy_words(synthetic_dir, tmp_path / "set", ["yes", "no", "cat"])
    reference = data.load_clip(next((folder / "yes").iterdir()))
    files = _write_bad_files(folder, reference)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = _load(folder, "yes,no", unknown_percentage=100, cache=False)
    messages = [str(w.message) for w in caught if issubclass(w.category, data.AudioFileWarning)]
    assert len(messages) == 1, messages  # one summary, not one line per file
    for path in files.values():
        assert path.name in messages[0]
    assert "6 of" in messages[0] and "3 skipped" not in messages[0]
    totals = {label: sum(dataset.label_counts[s][label] for s in data.SPLITS)
              for label in dataset.labels}
    good = {w: len(list((synthetic_dir / w).iterdir())) for w in ("yes", "no", "cat")}
    assert totals["yes"] == good["yes"] + 1  # + the 44.1 kHz file; corrupt and empty skipped
    assert totals["no"] == good["no"] + 1  # + the stereo file; the sample-less one skipped
    assert totals[data.UNKNOWN_WORD_LABEL] == good["cat"] + 1  # + the 2 s file, cropped

    with pytest.warns(data.AudioFileWarning, match="badc0de1"):
        assert data.load_clip(files["corrupt"]) is None
    with pytest.warns(data.AudioFileWarning, match="empty"):
        assert data.load_clip(files["zero_bytes"]) is None
    with pytest.warns(data.AudioFileWarning, match="downmixed"):
        stereo = data.load_clip(files["stereo"])
    np.testing.assert_allclose(stereo, 0.25 * reference, atol=2 / 32768)
    with pytest.warns(data.AudioFileWarning, match="44100 Hz -> 16000 Hz"):
        resampled = data.load_clip(files["rate_44k"])
    assert resampled.shape == (16000,) and np.corrcoef(resampled, reference)[0, 1] > 0.99
    with pytest.warns(data.AudioFileWarning, match="cropped"):
        np.testing.assert_array_equal(data.load_clip(files["two_seconds"]), reference)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a short clip is padded silently, as the seed does
        short = folder / "yes" / "short_nohash_0.wav"
        soundfile.write(short, reference[:9000], 16000, subtype="PCM_16")
        padded = data.load_clip(short)
    assert padded.shape == (16000,) and not padded[9000:].any()


def test_missing_or_short_noise_turns_mixing_off_with_a_warning(synthetic_dir, tmp_path):
    folder = _copy_words(synthetic_dir, tmp_path / "set", ["yes", "cat"], noise_files=0)
    soundfile.write(folder / data.BACKGROUND_NOISE_DIR_NAME / "blip.wav",
                    np.zeros(8000, np.int16), 16000)
    with pytest.warns(UserWarning) as caught:
        dataset = _load(folder, "yes")
    text = " ".join(str(w.message) for w in caught)
    assert "blip.wav" in text and "noise mixing is off" in text
    audio, labels = next(iter(dataset.dataset("training", batch_size=50)))
    assert not audio.numpy()[labels.numpy() == 0].any()  # silence stays zeros


def test_missing_or_empty_folder_and_unmatched_words_say_what_to_run(synthetic_dir, tmp_path):
    commands = ("python -m data_setup.synthetic --out DIR", "python -m data_setup.speech_commands")
    for folder in (tmp_path / "nowhere", tmp_path):
        with pytest.raises(data.MissingDataError) as error:
            _load(folder)
        assert str(folder) in str(error.value)
        assert all(command in str(error.value) for command in commands)
    with pytest.raises(data.MissingDataError, match="zebra, yak") as error:
        _load(synthetic_dir, "yes,zebra,yak")
    assert commands[0] in str(error.value) and "found" in str(error.value)
    with pytest.raises(data.MissingDataError, match="read_test_folder"):
        test_layout = _copy_words(synthetic_dir, tmp_path / "testlayout", ["yes"])
        (test_layout / "yes").rename(test_layout / data.UNKNOWN_WORD_LABEL)
        _load(test_layout)
    with pytest.raises(data.MissingDataError, match="nowhere"):
        data.read_test_folder(tmp_path / "nowhere", TWELVE_LABELS)


def test_read_test_folder_layout(synthetic_dir, tmp_path):
    folder = tmp_path / "test"
    for name, source in (("_silence_", None), ("_unknown_", "cat"), ("yes", "yes"), ("go", "go")):
        (folder / name).mkdir(parents=True)
        if source:
            for path in list((synthetic_dir / source).iterdir())[:3]:
                shutil.copy(path, folder / name / path.name)
    noise = data.load_clip(next((synthetic_dir / data.BACKGROUND_NOISE_DIR_NAME).glob("*.wav")),
                           clip_samples=None)
    soundfile.write(folder / "_silence_" / "0001.wav", noise[:16000], 16000, subtype="PCM_16")
    audio, labels = data.read_test_folder(folder, TWELVE_LABELS, progress=False)
    assert audio.shape == (10, 16000)
    assert sorted(labels.tolist()) == [0, 1, 1, 1, 2, 2, 2, 11, 11, 11]
    with pytest.raises(ValueError, match="exclude=\\('go',\\)"):
        data.read_test_folder(folder, TWELVE_LABELS[:-1])


def test_clip_cache_is_reused_and_invalidated(synthetic_dir, tmp_path):
    folder = _copy_words(synthetic_dir, tmp_path / "set", ["yes", "no"])
    cache_dir = tmp_path / "cache"
    options = dict(cache_dir=cache_dir, unknown_percentage=0)  # no other words in this copy
    first = _load(folder, "yes,no", **options)
    assert len(list(cache_dir.glob("*.npy"))) == 1
    second = _load(folder, "yes,no", **options)
    np.testing.assert_array_equal(first.arrays("training")[0], second.arrays("training")[0])
    assert len(list(cache_dir.glob("*.npy"))) == 1  # reused, not rewritten under a new key
    changed = folder / "yes" / sorted(p.name for p in (folder / "yes").iterdir())[0]
    soundfile.write(changed, np.zeros(16000, np.int16), 16000)
    third = _load(folder, "yes,no", **options)
    assert len(list(cache_dir.glob("*.npy"))) == 2  # a changed file gives a new key
    assert not np.array_equal(first.arrays("training")[0], third.arrays("training")[0])


def test_from_flags_takes_the_seeds_flag_names(synthetic_dir):
    flags = {"data_dir": str(synthetic_dir), "wanted_words": "yes,no", "silence_percentage": 5.0,
             "time_shift_ms": 50.0, "model_name": "svdf", "learning_rate": "0.001"}
    dataset = data.SpeechCommands.from_flags(flags, progress=False)
    assert dataset.labels == [data.SILENCE_LABEL, data.UNKNOWN_WORD_LABEL, "yes", "no"]
    assert dataset.time_shift_samples == 800
    assert data.DEFAULT_FLAGS["background_frequency"] == 0.8
    with pytest.raises(ValueError, match="data_dir"):
        data.SpeechCommands.from_flags({"wanted_words": "yes"})


def test_float_wav_files_load_as_their_samples_on_every_path(real_train_dir, tmp_path):
    # libsndfile truncates float samples to 0 when asked for int16: a float WAV was silence.
    source = next((real_train_dir / "yes").iterdir())
    reference = data.load_clip(source)
    assert np.abs(reference).max() > 0.05
    folder = tmp_path / "floats"
    (folder / "yes").mkdir(parents=True)
    for subtype in ("FLOAT", "DOUBLE"):
        soundfile.write(folder / "yes" / f"f{subtype.lower()}_nohash_0.wav", reference, 16000,
                        subtype=subtype)
    for path in sorted((folder / "yes").iterdir()):
        np.testing.assert_allclose(data.load_clip(path), reference, atol=1 / 32768)
    clips, ok = data.load_clips(sorted((folder / "yes").iterdir()), folder, progress=False,
                                cache=False)
    assert ok.all()
    np.testing.assert_allclose(clips / 32768.0, np.stack([reference] * 2), atol=1 / 32768)
    # A float file past full scale or with NaNs is fixed and named, not silently wrong.
    loud = reference * 4
    loud[100:110] = np.nan
    soundfile.write(folder / "loud.wav", loud, 16000, subtype="FLOAT")
    with pytest.warns(data.AudioFileWarning, match=r"loud\.wav.*NaN.*clipped|loud\.wav"):
        fixed = data.load_clip(folder / "loud.wav")
    assert np.isfinite(fixed).all() and np.abs(fixed).max() <= 1.0 and np.abs(fixed).max() > 0.5
    # Long recordings read through the same decoder.
    from kwsnb.data.long_audio import LongRecording

    soundfile.write(folder / "long.wav", np.concatenate([reference] * 3), 16000, subtype="FLOAT")
    (folder / "long.csv").write_text("start_s,end_s,label\n0.1,0.9,yes\n")
    recording = LongRecording.load(folder / "long.wav")
    np.testing.assert_allclose(recording.audio[:16000], reference, atol=1 / 32768)


def test_split_lists_naming_missing_clips_and_impossible_percentages_are_reported(synthetic_dir,
                                                                                 tmp_path):
    folder = _copy_words(synthetic_dir, tmp_path / "set", ["yes", "no", "cat"])
    speakers = sorted({_speaker(p) for p in (folder / "yes").iterdir()})
    (folder / "validation_list.txt").write_text(
        f"yes/{speakers[0]}_nohash_0.wav\nyes/gone1_nohash_0.wav\nno/gone2_nohash_0.wav\n")
    with pytest.warns(UserWarning, match=r"validation_list\.txt names 2 of its 3 clips that are "
                                         r"not in .*no/gone2_nohash_0, yes/gone1_nohash_0"):
        dataset = _load(folder, "yes,no")
    assert dataset.label_counts["validation"]["yes"] == 1
    for bad, named in ((dict(validation_percentage=120), "validation_percentage=120"),
                       (dict(silence_percentage=-5), "silence_percentage=-5"),
                       (dict(validation_percentage=60, testing_percentage=60), "= 120")):
        with pytest.raises(ValueError, match=f"{named}.*must lie in 0-100"):
            _load(folder, "yes,no", **bad)


def _clip_files(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True)
    paths = [folder / f"{index}.wav" for index in range(count)]
    for index, path in enumerate(paths):
        soundfile.write(path, np.full(16000, index, np.int16), 16000)
    return paths


def test_clip_cache_keeps_the_most_recently_used_entries_within_its_size(tmp_path, monkeypatch):
    from kwsnb.data import audio

    cache_dir = tmp_path / "cache"
    sets = {name: _clip_files(tmp_path / name, 10) for name in "abc"}
    entry_bytes = 10 * 16000 * 2
    monkeypatch.setenv("KWSNB_CACHE_MAX_GB", str(2.5 * entry_bytes / 1024 ** 3))  # two entries
    load = {name: (lambda paths=paths, name=name: audio.load_clips(
        paths, tmp_path / name, progress=False, cache_dir=cache_dir)) for name, paths in sets.items()}
    load["a"]()
    load["b"]()
    metas = sorted(cache_dir.glob("*.json"))
    assert len(metas) == 2
    for meta in metas:  # both written long ago, so only the read below makes one recent
        os.utime(meta, (1e9, 1e9))
    key_of = {name: audio._cache_key(tmp_path / name, paths, 16000, 16000)
              for name, paths in sets.items()}
    clips, ok = load["a"]()  # a cache hit: a becomes the most recently used
    assert ok.all() and clips[3, 0] == 3
    load["c"]()
    assert sorted(p.stem for p in cache_dir.glob("*.npy")) == sorted([key_of["a"], key_of["c"]])
    assert sorted(p.stem for p in cache_dir.glob("*.json")) == sorted([key_of["a"], key_of["c"]])
    os.utime(cache_dir / f"{key_of['a']}.json", (1e9, 1e9))  # a: now the least recently used
    stale = cache_dir / ".tmp-1-stale.npy"  # left by a killed writer
    stale.write_bytes(b"x")
    os.utime(stale, (1e9, 1e9))
    load["b"]()
    assert sorted(p.stem for p in cache_dir.glob("*.npy")) == sorted([key_of["b"], key_of["c"]])
    assert not stale.exists()


def test_clip_cache_settings_and_a_full_disk(tmp_path, monkeypatch, caplog):
    from kwsnb.data import audio

    paths = _clip_files(tmp_path / "set", 4)
    cache_dir = tmp_path / "cache"
    monkeypatch.setenv("KWSNB_CACHE_MAX_GB", "lots")
    with pytest.raises(ValueError, match="KWSNB_CACHE_MAX_GB='lots'"):
        audio.load_clips(paths, tmp_path / "set", progress=False, cache_dir=cache_dir)
    monkeypatch.setenv("KWSNB_CACHE_MAX_GB", "0")  # off: decodes, writes nothing
    clips, ok = audio.load_clips(paths, tmp_path / "set", progress=False, cache_dir=cache_dir)
    assert ok.all() and clips[2, 0] == 2 and not list(cache_dir.glob("*.npy"))
    monkeypatch.delenv("KWSNB_CACHE_MAX_GB")
    full = shutil.disk_usage(tmp_path)._replace(free=audio.CACHE_MIN_FREE_BYTES)
    monkeypatch.setattr(audio.shutil, "disk_usage", lambda path: full)
    with caplog.at_level("WARNING", logger="kwsnb.data"):
        clips, ok = audio.load_clips(paths, tmp_path / "set", progress=False, cache_dir=cache_dir)
    assert ok.all() and not list(cache_dir.glob("*.npy"))
    assert "KWSNB_CACHE_DIR" in caplog.text and "free" in caplog.text


def test_partial_writes_of_killed_writers_are_removed_and_live_ones_kept(tmp_path):
    from kwsnb.data import files

    own = tmp_path / f".tmp-{os.getpid()}-a.npy"  # this process may be writing it
    other_old, other_young = tmp_path / ".tmp-1-b.npy", tmp_path / ".tmp-2-c.npy"
    for path in (own, other_old, other_young):
        path.write_bytes(b"x")
    os.utime(other_old, (1e9, 1e9))
    files.remove_partial_writes(tmp_path, older_than_s=3600)
    assert own.exists() and other_young.exists() and not other_old.exists()
    files.remove_partial_writes(tmp_path)  # any age (a folder with one writer: the train_dir)
    assert own.exists() and not other_young.exists()
    files.atomic_write(tmp_path / "d.txt", lambda temporary: temporary.write_text("d"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [own.name, "d.txt"]
