"""Offline text-to-speech keyword data set in the Speech Commands layout.

``python -m data_setup.synthetic --out data/synthetic`` speaks every word of a word list (by
default the 35 Speech Commands V2 words) with many synthetic speakers, using the espeak-ng
library and voice data shipped in the ``espeakng-loader`` wheel (no system packages, no
network), and writes::

    out/<word>/<speaker_id>_nohash_0.wav     16 kHz mono 16-bit, exactly 1 s, speech centred
    out/_background_noise_/*.wav             generated noise (see data_setup.noise), 60 s each
    out/validation_list.txt, testing_list.txt  whole speakers, by percentage
    out/speakers.csv                         every speaker's voice and recording settings
    out/.complete                            JSON of the parameters and counts

Speakers. A speaker is one espeak-ng English accent (8) x voice variant (84 of the 104
bundled variants plus the plain voice; robotic, whispered, heavy-echo and test variants left
out), alternating female- and male-sounding variants, with its own speaking rate (95-185
words/min), pitch and pitch range (espeak-ng's 0-100 scales), loudness, microphone band, room
and noise floor, all drawn from the seed. Each utterance varies a little around its speaker
(rate +-8 %, pitch +-4, gain +-1.5 dB) and ends in ".", "!" or "?" (falling, emphatic or
rising intonation).

Clip processing, in order:
1. espeak-ng (22,050 Hz) -> 16 kHz with the soxr resampler (high quality; librosa's default).
2. Leading and trailing silence trimmed (40 dB below the loudest frame), 20 ms margin kept.
   Longer than 0.9 s? Re-synthesized faster (rate scaled by the excess, up to 3 times, at most
   600 words/min); if still too long, the loudest 0.9 s is kept with 10 ms fades.
3. Centred in 1 s of silence.
4. "Room and microphone", so clips are not digitally perfect: convolution with a synthetic
   room impulse response (direct sound + exponentially decaying noise tail, RT60 0.08-0.5 s,
   direct-to-reverberant ratio 3-20 dB), then a microphone band (2nd-order high-pass at
   40-200 Hz, 4th-order low-pass at 5.5-7.8 kHz, or 3.4-4.5 kHz for one speaker in four).
5. Level: whole-clip RMS set to 0.045 of full scale (the median of real Speech Commands
   keyword clips) x the speaker's gain (normal, sd 6 dB, within -14..+9 dB; real clips' RMS
   spans about 0.01-0.11 from the 10th to the 90th percentile).
6. Noise floor: white, pink or brown noise per speaker, 25-55 dB below the clip's RMS (real
   clips' quietest frames sit a median 35 dB below theirs). Peaks are kept below 0.99.

Determinism. espeak-ng keeps synthesis state in static variables (pitch flutter phase,
gain control, echo buffer), so the same call gives different audio depending on what was
said before, and seeds its breath noise from the clock. Every utterance therefore runs in a
freshly loaded private copy of the library (about 1 ms) with a fixed noise seed, which makes
each clip depend only on (seed, speaker, word): the same seed gives byte-identical files
whatever the word list order or the number of processes.

Splits. Whole speakers go to validation and testing by percentage (at least one each when the
percentage is above zero). Speaker IDs are 8 hex digits like Speech Commands' and are chosen so
that kws_streaming's hash split (SHA-1 of the ID, ``which_set``) puts each speaker in the same
split as the lists do, so both ways of splitting agree.
"""
from __future__ import annotations

import argparse
import atexit
import concurrent.futures
import contextlib
import csv
import ctypes
import dataclasses
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import soundfile
from scipy import signal

from data_setup import noise as noise_gen

SPEECH_COMMANDS_V2_WORDS = (
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward",
    "four", "go", "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one",
    "right", "seven", "sheila", "six", "stop", "three", "tree", "two", "up", "visual", "wow",
    "yes", "zero",
)

SAMPLE_RATE = 16000
CLIP_SAMPLES = 16000
BACKGROUND_NOISE_DIR = "_background_noise_"
COMPLETE_MARKER = ".complete"
# Bump when a change alters the audio, so an old folder is not mistaken for the new recipe.
GENERATOR_VERSION = 1

DEFAULT_NUM_SPEAKERS = 300
DEFAULT_NOISE_SECONDS = 60.0

TARGET_RMS = 0.045          # median whole-clip RMS of real Speech Commands keyword clips
MAX_SPEECH_SECONDS = 0.9    # longest trimmed utterance placed in a 1 s clip
TRIM_TOP_DB = 40.0
TRIM_MARGIN_SECONDS = 0.02
PEAK_LIMIT = 0.99

# espeak-ng English accents (voice names as espeak_SetVoiceByName takes them).
ACCENTS = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
           "en-029", "en-us-nyc")
# Voice variants in espeak-ng-data/voices/!v, split by how they sound. Left out: robotic
# (robosoft*, UniRobot, anikaRobot), whispered (whisper, whisperf, caleb), heavy echo or
# effects (Demonic, RicishayMax*, announcer), the "fast" test variant, and Reed, whose
# breath noise draws on the C library's rand() (process-wide state, so not reproducible).
FEMALE_VARIANTS = ("f1", "f2", "f3", "f4", "f5", "Alicia", "Andrea", "Annie", "anika", "aunty",
                   "belinda", "grandma", "linda", "shelby", "steph", "steph2", "steph3", "zac")
MALE_VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "Alex", "Andy",
                 "AnxiousAndy", "Denis", "Diogo", "Gene", "Gene2", "Henrique", "Hugo", "Jacky",
                 "Lee", "Marco", "Mario", "Michael", "Mike", "Mr serious", "Nguyen", "Storm",
                 "Tweaky", "adam", "antonio", "benjamin", "boris", "croak", "david", "ed",
                 "edward", "edward2", "grandpa", "gustave", "ian", "iven", "iven2", "iven3",
                 "iven4", "john", "kaukovalta", "klatt", "klatt2", "klatt3", "klatt4", "klatt5",
                 "klatt6", "marcelo", "max", "michel", "miguel", "mike2", "norbert", "pablo",
                 "paul", "pedro", "quincy", "rob", "robert", "sandro", "travis", "victor")

RATE_RANGE_WPM = (95.0, 185.0)
MAX_RATE_WPM = 600
PITCH_RANGE = (25.0, 75.0)
PITCH_SPREAD_RANGE = (20.0, 85.0)
ENDINGS = (".", "!", "?")
ENDING_WEIGHTS = (0.6, 0.2, 0.2)

# A word must be a plain English spelling: it names a folder and espeak-ng reads it aloud.
_WORD_PATTERN = re.compile(r"^[a-z]+(?:['-][a-z]+)*$")

# Independent random streams per purpose, so that e.g. the split never shifts the voices.
(_VOICE_STREAM, _SPEAKER_STREAM, _UTTERANCE_STREAM, _SPLIT_STREAM, _BABBLE_STREAM,
 _ROOM_STREAM) = range(6)

# Words for the babble noise (never the keywords themselves: those are filtered out).
_BABBLE_VOCABULARY = (
    "the of and to in is you that it he was for are as with his they at be this have from "
    "or had by hot word but what some we can out other were all there when your how said an "
    "each she which do their time if will way about many then them write would like so these "
    "her long make thing see him has look more day could come did number sound most people "
    "my over know water than call first who may side been now find any new work part take get "
    "place made live where after back little only round man year came show every good me give "
    "our under name very through just form sentence great think say help low line differ turn "
    "cause much mean before move boy old too same tell does set three want air well also play "
    "small end put home read hand port large spell add even land here must big high such follow "
    "act why ask men change went light kind need picture try again animal point mother world "
    "near build self earth father head stand own page should country found answer school grow "
    "study still plant cover food sun between state keep eye never last let thought city cross "
    "farm hard start might story saw far sea draw late run while press close night real life "
    "few north open seem together next white children begin got walk example ease paper group "
    "always music those both mark often letter until mile river car feet care second book carry "
    "took science eat room friend began idea fish mountain once base hear horse cut sure watch "
    "color face wood main enough plain girl usual young ready above ever red list though feel "
    "talk soon body family direct pose leave song measure door product black short numeral class "
    "wind question happen complete ship area half rock order fire south problem piece told knew "
    "pass since top whole king space heard best hour better true during hundred remember step "
    "early hold west ground interest reach fast verb sing listen table travel less morning ten "
    "simple several vowel toward war lay against pattern slow center love person money serve "
    "appear road map rain rule govern pull cold notice voice unit power town fine certain fly "
    "fall lead cry dark machine note wait plan figure star box noun field rest correct able "
    "pound done beauty drive stood contain front teach week final gave green quick develop ocean "
    "warm free minute strong special mind behind clear tail produce fact street inch multiply "
    "nothing course stay wheel full force blue object decide surface deep moon island foot "
    "system busy test record boat common gold possible plane stead dry wonder laugh thousand ago "
    "ran check game shape equate miss brought heat snow tire bring distant fill east paint "
    "language among").split()


class SynthesisError(RuntimeError):
    """espeak-ng could not be loaded or could not say something."""


# --------------------------------------------------------------------------- espeak-ng engine

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000   # report errors instead of calling exit(1)
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE, _PITCH, _RANGE = 1, 3, 4
_EE_OK = 0
# espeak-ng copies the data path into a 160-byte buffer and appends sub-paths.
_MAX_DATA_PATH_BYTES = 120
# What English synthesis reads from espeak-ng-data.
_ENGLISH_DATA_FILES = ("phontab", "phonindex", "phondata", "intonations", "en_dict",
                       "voices/!v", "lang/gmw")

# The process's C library (POSIX), to pin rand() for the one synthesis path that uses it.
_C_LIBRARY = ctypes.CDLL(None) if sys.platform != "win32" else None

_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                  ctypes.c_void_p)


def _close_library(library: ctypes.CDLL) -> None:
    import _ctypes
    if sys.platform == "win32":
        _ctypes.FreeLibrary(library._handle)
    else:
        _ctypes.dlclose(library._handle)


class Espeak:
    """espeak-ng from the espeakng-loader wheel, driven in-process through ctypes.

    Each ``say`` loads a private copy of the library afresh, synthesizes synchronously into a
    callback and unloads it again, so no synthesis state leaks from one utterance to the next
    (see the module docstring). One instance per process; espeak-ng is not thread-safe.
    """

    sample_rate = 22050

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as error:
            raise SynthesisError("the espeakng-loader package is missing: pip install "
                                 "espeakng-loader (it ships espeak-ng's library and voices)"
                                 ) from error
        source = Path(espeakng_loader.get_library_path())
        if not source.is_file():
            raise SynthesisError(f"espeakng-loader's library is missing at {source}; "
                                 "reinstall espeakng-loader")
        self._scratch = Path(tempfile.mkdtemp(prefix="kwsnb-espeak-"))
        atexit.register(shutil.rmtree, self._scratch, ignore_errors=True)
        self.data_path = _english_data(Path(espeakng_loader.get_data_path()), self._scratch)
        # A private copy of the library too: dlopen of a path that another component already
        # loaded returns that shared, stateful instance, and dlclose would not reset it.
        self._library_path = self._scratch / source.name
        shutil.copy2(source, self._library_path)
        self._chunks: list[np.ndarray] = []
        self._callback = _SynthCallback(self._collect)
        self.variants = frozenset(p.name for p in (self.data_path / "voices" / "!v").iterdir())
        with self._fresh_library() as library:
            library.espeak_Info.restype = ctypes.c_char_p
            self.version = library.espeak_Info(None).decode()

    def _collect(self, samples, num_samples, _events) -> int:
        if samples and num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(num_samples,)).copy())
        return 0  # 0 = carry on

    @contextlib.contextmanager
    def _fresh_library(self):
        """A newly loaded, initialized library (its static state at load-time values)."""
        library = ctypes.CDLL(str(self._library_path))
        try:
            library.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                                  ctypes.c_int]
            rate = library.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                             str(self.data_path).encode(), _INITIALIZE_DONT_EXIT)
            if rate != self.sample_rate:
                raise SynthesisError(f"espeak-ng failed to start (espeak_Initialize returned "
                                     f"{rate}) with data at {self.data_path}")
            library.espeak_SetSynthCallback(self._callback)
            try:
                yield library
            finally:
                library.espeak_Terminate()
        finally:
            _close_library(library)

    def say(self, text: str, voice: str, rate: int = 175, pitch: int = 50,
            pitch_range: int = 50, noise_seed: int = 1) -> np.ndarray:
        """Synthesize ``text``; int16 samples at ``Espeak.sample_rate``.

        ``voice`` is ``accent[+variant]`` (e.g. ``en-us+f3``); rate in words per minute
        (80-600), pitch and pitch_range on espeak-ng's 0-100 scales; ``noise_seed`` seeds the
        breath noise of some variants (espeak-ng would otherwise seed it from the clock).
        """
        variant = voice.partition("+")[2]
        if variant and variant not in self.variants:
            raise SynthesisError(f"espeak-ng voice variant {variant!r} is not in "
                                 f"{self.data_path / 'voices' / '!v'}")
        self._chunks = []
        with self._fresh_library() as library:
            if library.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                raise SynthesisError(f"espeak-ng has no voice {voice!r}")
            for parameter, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, pitch_range)):
                library.espeak_SetParameter(parameter, int(value), 0)
            library.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
            library.espeak_ng_SetRandSeed(int(noise_seed))
            if _C_LIBRARY is not None:  # one klatt breath path uses the C library's rand()
                _C_LIBRARY.srand(int(noise_seed))
            encoded = text.encode("utf-8")
            library.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint,
                                             ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                             ctypes.c_void_p, ctypes.c_void_p]
            status = library.espeak_Synth(encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0,
                                          _CHARS_UTF8, None, None)
            if status != _EE_OK:
                raise SynthesisError(f"espeak-ng failed to say {text!r} with {voice!r} "
                                     f"(espeak_Synth returned {status})")
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)


def _english_data(wheel_data: Path, folder: Path) -> Path:
    """Copy the English part of espeak-ng-data (about 1 MB) into ``folder``.

    Two reasons for a private copy: espeak-ng silently truncates long data paths (deep
    virtualenvs) and then fails to start; and it lower-cases voice names before looking for
    the file, so ``en-us`` misses ``lang/gmw/en-US`` and falls back to scanning every voice
    file (4 ms, as long as the synthesis). Lower-case copies of the accents in ``voices/``
    are found directly.
    """
    data = folder / "espeak-ng-data"
    if len(str(data).encode()) > _MAX_DATA_PATH_BYTES:
        raise SynthesisError(f"espeak-ng needs its data under a short path, and {data} is too "
                             "long; set TMPDIR to a short folder")
    data.mkdir()
    for name in _ENGLISH_DATA_FILES:
        source = wheel_data / name
        if not source.exists():
            raise SynthesisError(f"espeak-ng data {source} is missing; reinstall espeakng-loader")
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, data / name)
    for accent_file in (wheel_data / "lang" / "gmw").iterdir():
        if accent_file.name.lower().startswith("en"):
            shutil.copy2(accent_file, data / "voices" / accent_file.name.lower())
    return data


_ENGINE: Espeak | None = None


def _engine() -> Espeak:
    """This process's espeak-ng (created on first use)."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = Espeak()
    return _ENGINE


# --------------------------------------------------------------------------- speakers

@dataclasses.dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: an espeak-ng voice plus how and where it was 'recorded'."""
    index: int
    speaker_id: str
    split: str               # training / validation / testing
    voice: str               # espeak-ng accent+variant
    rate_wpm: float
    pitch: float
    pitch_range: float
    gain_db: float           # loudness relative to TARGET_RMS
    highpass_hz: float
    lowpass_hz: float
    rt60_s: float
    direct_to_reverb_db: float
    noise_color: str         # white / pink / brown
    snr_db: float            # clip RMS over noise-floor RMS


def _which_set(speaker_id: str, validation_percentage: float, testing_percentage: float) -> str:
    """kws_streaming's (and TensorFlow speech_commands') hash split of a speaker ID."""
    max_num_wavs_per_class = 2 ** 27 - 1
    hashed = int(hashlib.sha1(speaker_id.encode()).hexdigest(), 16)
    percentage = (hashed % (max_num_wavs_per_class + 1)) * (100.0 / max_num_wavs_per_class)
    if percentage < validation_percentage:
        return "validation"
    if percentage < validation_percentage + testing_percentage:
        return "testing"
    return "training"


def _split_sizes(num_speakers: int, validation_percentage: float,
                 testing_percentage: float) -> tuple[int, int]:
    def size(percentage: float) -> int:
        return max(1, round(num_speakers * percentage / 100.0)) if percentage > 0 else 0

    num_validation, num_testing = size(validation_percentage), size(testing_percentage)
    if num_speakers - num_validation - num_testing < 1:
        raise ValueError(f"num_speakers={num_speakers} leaves no training speaker with "
                         f"validation_percentage={validation_percentage} and "
                         f"testing_percentage={testing_percentage}; use more speakers")
    return num_validation, num_testing


def _voice_pool(seed: int, variants_available: Iterable[str]) -> tuple[list[str], list[str]]:
    """Shuffled accent x variant voices, female-sounding and male-sounding."""
    available = set(variants_available) | {""}
    rng = np.random.default_rng([seed, _VOICE_STREAM])
    pools = []
    for variants in (FEMALE_VARIANTS, MALE_VARIANTS):
        unique = [v for v in dict.fromkeys(variants) if v in available]
        voices = [f"{accent}+{variant}" if variant else accent
                  for accent in ACCENTS for variant in unique]
        pools.append([voices[i] for i in rng.permutation(len(voices))])
    if not pools[0] or not pools[1]:
        raise SynthesisError("espeak-ng's bundled voice variants are missing; "
                             "reinstall espeakng-loader")
    return pools[0], pools[1]


def make_speakers(num_speakers: int, seed: int, validation_percentage: float = 10.0,
                  testing_percentage: float = 10.0,
                  variants_available: Iterable[str] = FEMALE_VARIANTS + MALE_VARIANTS
                  ) -> list[Speaker]:
    """The speakers of a data set, deterministic for ``seed``.

    Speaker i's voice and recording settings depend only on (seed, i), so a bigger set
    extends a smaller one; the split and therefore the ID also depend on ``num_speakers``.
    """
    if num_speakers < 1:
        raise ValueError(f"num_speakers must be at least 1, got {num_speakers}")
    for name, value in (("validation_percentage", validation_percentage),
                        ("testing_percentage", testing_percentage)):
        if not 0.0 <= value < 100.0:
            raise ValueError(f"{name} must be in [0, 100), got {value}")
    num_validation, num_testing = _split_sizes(num_speakers, validation_percentage,
                                               testing_percentage)
    order = np.random.default_rng([seed, _SPLIT_STREAM]).permutation(num_speakers)
    splits = ["training"] * num_speakers
    for i in order[:num_validation]:
        splits[i] = "validation"
    for i in order[num_validation:num_validation + num_testing]:
        splits[i] = "testing"

    female, male = _voice_pool(seed, variants_available)
    speakers, used_ids = [], set()
    for index in range(num_speakers):
        rng = np.random.default_rng([seed, _SPEAKER_STREAM, index])
        pool = female if index % 2 == 0 else male
        voice = pool[(index // 2) % len(pool)]
        narrowband = rng.random() < 0.25
        speakers.append(Speaker(
            index=index,
            speaker_id=_speaker_id(seed, index, splits[index], used_ids,
                                   validation_percentage, testing_percentage),
            split=splits[index],
            voice=voice,
            rate_wpm=round(float(rng.uniform(*RATE_RANGE_WPM)), 1),
            pitch=round(float(rng.uniform(*PITCH_RANGE)), 1),
            pitch_range=round(float(rng.uniform(*PITCH_SPREAD_RANGE)), 1),
            gain_db=round(float(np.clip(rng.normal(0.0, 6.0), -14.0, 9.0)), 2),
            highpass_hz=round(float(rng.uniform(40.0, 200.0)), 1),
            lowpass_hz=round(float(rng.uniform(3400.0, 4500.0) if narrowband
                                   else rng.uniform(5500.0, 7800.0)), 1),
            rt60_s=round(float(rng.uniform(0.08, 0.5)), 3),
            direct_to_reverb_db=round(float(rng.uniform(3.0, 20.0)), 2),
            noise_color=str(rng.choice(["white", "pink", "brown"])),
            snr_db=round(float(rng.uniform(25.0, 55.0)), 2),
        ))
    return speakers


def _speaker_id(seed: int, index: int, split: str, used: set[str],
                validation_percentage: float, testing_percentage: float) -> str:
    """8 hex digits whose kws_streaming hash split equals ``split`` (and not yet used)."""
    for attempt in range(1_000_000):
        name = f"kwsnb-synthetic/{seed}/{index}/{attempt}"
        candidate = hashlib.sha1(name.encode()).hexdigest()[:8]
        if candidate not in used and _which_set(candidate, validation_percentage,
                                                testing_percentage) == split:
            used.add(candidate)
            return candidate
    raise ValueError(f"no speaker ID falls in the {split} hash split with "
                     f"validation_percentage={validation_percentage}, "
                     f"testing_percentage={testing_percentage}")


# --------------------------------------------------------------------------- audio

def _to_float(samples: np.ndarray) -> np.ndarray:
    return samples.astype(np.float32) / 32768.0


def _resample(audio: np.ndarray, source_rate: int) -> np.ndarray:
    """To 16 kHz with soxr's high-quality resampler (what librosa.resample uses by default,
    called directly: importing librosa costs seconds per worker process)."""
    import soxr
    return soxr.resample(audio, source_rate, SAMPLE_RATE, quality="HQ")


def _trim(audio: np.ndarray, frame_length: int = 512, hop_length: int = 64) -> np.ndarray:
    """Speech without leading/trailing silence (frames TRIM_TOP_DB below the loudest frame,
    as librosa.effects.trim), keeping a TRIM_MARGIN_SECONDS margin either side."""
    if len(audio) < frame_length or not np.any(audio):
        return audio[:0]
    frames = np.lib.stride_tricks.sliding_window_view(audio, frame_length)[::hop_length]
    power = np.mean(frames.astype(np.float64) ** 2, axis=1)
    loud = np.flatnonzero(power > power.max() * 10.0 ** (-TRIM_TOP_DB / 10.0))
    margin = int(TRIM_MARGIN_SECONDS * SAMPLE_RATE)
    start = loud[0] * hop_length
    end = loud[-1] * hop_length + frame_length
    return audio[max(0, start - margin):min(len(audio), end + margin)]


def _loudest_window(audio: np.ndarray, length: int) -> np.ndarray:
    """The ``length``-sample stretch with the most energy, with 10 ms fades at both ends."""
    energy = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
    start = int(np.argmax(energy[length:] - energy[:-length]))
    window = audio[start:start + length].copy()
    fade = int(0.01 * SAMPLE_RATE)
    ramp = np.linspace(0.0, 1.0, fade, dtype=window.dtype)
    window[:fade] *= ramp
    window[-fade:] *= ramp[::-1]
    return window


def speak(engine: Espeak, text: str, voice: str, rate: float, pitch: float,
          pitch_range: float, noise_seed: int = 1) -> tuple[np.ndarray, str]:
    """Trimmed 16 kHz float speech of at most MAX_SPEECH_SECONDS, and how it was made to fit
    (``"as is"``, ``"faster"`` or ``"cropped"``)."""
    max_samples = int(MAX_SPEECH_SECONDS * SAMPLE_RATE)
    fitted = "as is"
    for _ in range(4):
        speech = _trim(_resample(_to_float(engine.say(text, voice, round(rate), round(pitch),
                                                       round(pitch_range), noise_seed)),
                                 engine.sample_rate))
        if len(speech) <= max_samples or rate >= MAX_RATE_WPM:
            break
        rate = min(MAX_RATE_WPM, rate * len(speech) / max_samples * 1.05)
        fitted = "faster"
    if len(speech) > max_samples:
        speech, fitted = _loudest_window(speech, max_samples), "cropped"
    return speech, fitted


def _room_response(speaker: Speaker, rng: np.random.Generator) -> np.ndarray:
    """Direct sound plus an exponentially decaying noise tail (the speaker's room)."""
    length = int(speaker.rt60_s * SAMPLE_RATE)
    t = np.arange(1, length) / SAMPLE_RATE
    tail = rng.standard_normal(length - 1) * np.exp(-6.908 * t / speaker.rt60_s)  # -60 dB at RT60
    tail *= np.sqrt(10.0 ** (-speaker.direct_to_reverb_db / 10.0) / np.sum(tail ** 2))
    return np.concatenate([[1.0], tail])


def _microphone(speaker: Speaker) -> np.ndarray:
    highpass = signal.butter(2, speaker.highpass_hz, btype="highpass", fs=SAMPLE_RATE, output="sos")
    lowpass = signal.butter(4, speaker.lowpass_hz, btype="lowpass", fs=SAMPLE_RATE, output="sos")
    return np.concatenate([highpass, lowpass])


def _noise_floor(color: str, rng: np.random.Generator) -> np.ndarray:
    exponent = {"white": 0.0, "pink": 1.0, "brown": 2.0}[color]
    return noise_gen.coloured_noise(CLIP_SAMPLES, exponent, rng, SAMPLE_RATE)


def render_clip(speech: np.ndarray, speaker: Speaker, room_response: np.ndarray,
                microphone: np.ndarray, rng: np.random.Generator,
                gain_jitter_db: float = 0.0) -> np.ndarray:
    """Centre speech in 1 s, add the speaker's room, microphone (second-order sections),
    level and noise floor; int16 samples."""
    clip = np.zeros(CLIP_SAMPLES, np.float64)
    start = (CLIP_SAMPLES - len(speech)) // 2
    clip[start:start + len(speech)] = speech
    clip = signal.fftconvolve(clip, room_response)[:CLIP_SAMPLES]
    clip = signal.sosfilt(microphone, clip)
    rms = float(np.sqrt(np.mean(clip ** 2)))
    if rms <= 0.0:
        raise SynthesisError("a clip came out silent")
    level = TARGET_RMS * 10.0 ** ((speaker.gain_db + gain_jitter_db) / 20.0)
    clip *= level / rms
    clip += level * 10.0 ** (-speaker.snr_db / 20.0) * _noise_floor(speaker.noise_color, rng)
    peak = float(np.max(np.abs(clip)))
    if peak > PEAK_LIMIT:
        clip *= PEAK_LIMIT / peak
    return np.round(clip * 32767.0).astype(np.int16)


def _utterance_rng(seed: int, speaker: Speaker, word: str) -> np.random.Generator:
    # crc32 of the word (not its position) so a clip does not change with the word list.
    return np.random.default_rng([seed, _UTTERANCE_STREAM, speaker.index,
                                  zlib.crc32(word.encode())])


def _synthesize_speaker(out_dir: str, speaker: Speaker, words: Sequence[str], seed: int) -> dict:
    """Write one speaker's clip of every word; returns counts for the summary."""
    engine = _engine()
    # One room and microphone per speaker: every word is "recorded" in the same place.
    room = _room_response(speaker, np.random.default_rng([seed, _ROOM_STREAM, speaker.index]))
    microphone = _microphone(speaker)
    fits = {"as is": 0, "faster": 0, "cropped": 0}
    seconds = []
    for word in words:
        rng = _utterance_rng(seed, speaker, word)
        ending = rng.choice(ENDINGS, p=ENDING_WEIGHTS)
        speech, fitted = speak(engine, word + ending, speaker.voice,
                               rate=speaker.rate_wpm * rng.uniform(0.92, 1.08),
                               pitch=np.clip(speaker.pitch + rng.uniform(-4, 4), 0, 100),
                               pitch_range=speaker.pitch_range,
                               noise_seed=int(rng.integers(1, 2 ** 31)))
        if len(speech) < 0.05 * SAMPLE_RATE:
            raise SynthesisError(f"espeak-ng produced no speech for {word!r} with voice "
                                 f"{speaker.voice!r}")
        fits[fitted] += 1
        seconds.append(len(speech) / SAMPLE_RATE)
        clip = render_clip(speech, speaker, room, microphone, rng,
                           gain_jitter_db=rng.uniform(-1.5, 1.5))
        soundfile.write(Path(out_dir) / word / f"{speaker.speaker_id}_nohash_0.wav", clip,
                        SAMPLE_RATE, subtype="PCM_16")
    return {"clips": len(words), "fits": fits, "speech_seconds": seconds}


def _babble_talkers(seed: int, exclude: Iterable[str], num_seconds: float) -> list[np.ndarray]:
    """Five to eight streams of synthetic sentences made only of non-keywords."""
    engine = _engine()
    rng = np.random.default_rng([seed, _BABBLE_STREAM])
    excluded = set(exclude)
    vocabulary = [w for w in _BABBLE_VOCABULARY if w not in excluded]
    female, male = _voice_pool(seed, engine.variants)
    talkers = []
    # Talkers loop (from random offsets) inside noise.babble, so ~20 s each is plenty.
    talker_seconds = min(num_seconds, 20.0)
    for talker in range(int(rng.integers(5, 9))):
        pool = female if talker % 2 == 0 else male
        voice = pool[int(rng.integers(len(pool)))]
        parts, total = [], 0
        while total < talker_seconds * SAMPLE_RATE:
            sentence = " ".join(rng.choice(vocabulary, size=int(rng.integers(4, 10)))) + "."
            audio = _resample(_to_float(engine.say(sentence, voice, int(rng.uniform(140, 220)),
                                                   int(rng.uniform(30, 70)),
                                                   noise_seed=int(rng.integers(1, 2 ** 31)))),
                              engine.sample_rate)
            parts.append(audio)
            total += len(audio)
        talkers.append(np.concatenate(parts))
    return talkers


def _write_background_noise(out_dir: str | Path, seed: int, words: Sequence[str],
                            noise_seconds: float) -> list[str]:
    folder = Path(out_dir) / BACKGROUND_NOISE_DIR
    folder.mkdir()
    num_samples = int(round(noise_seconds * SAMPLE_RATE))
    talkers = _babble_talkers(seed, words, noise_seconds)
    recordings = noise_gen.generate(num_samples, seed, talkers, SAMPLE_RATE)
    for name, audio in recordings.items():
        soundfile.write(folder / f"{name}.wav", audio, SAMPLE_RATE, subtype="PCM_16")
    (folder / "README.md").write_text(
        "Generated background noise (data_setup.noise), 16 kHz mono 16-bit.\n"
        + "".join(f"- {name}.wav: base RMS {noise_gen.BASE_RMS[name]} of full scale\n"
                  for name in recordings)
        + f"Levels drift slowly within +-{noise_gen.LEVEL_DRIFT_DB:g} dB of the base RMS.\n")
    return sorted(recordings)


# --------------------------------------------------------------------------- data set

def _check_words(words: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(words, str):
        words = words.split(",")
    cleaned = tuple(str(w).strip() for w in words)
    if not cleaned or all(not w for w in cleaned):
        raise ValueError("the word list is empty; give words like ['yes', 'no']")
    bad = [w for w in cleaned if not _WORD_PATTERN.match(w)]
    if bad:
        raise ValueError(f"cannot synthesize {bad}: each word must be lower-case English "
                         "letters a-z (an inner ' or - is allowed), one word per entry, as it "
                         "names a folder")
    duplicates = sorted({w for w in cleaned if cleaned.count(w) > 1})
    if duplicates:
        raise ValueError(f"words appear more than once: {duplicates}")
    return cleaned


def _check_sayable(engine: Espeak, words: Sequence[str]) -> None:
    """Fail before any work if a word makes no sound or cannot fit 1 s even at top speed."""
    too_long = []
    for word in words:
        speech = _trim(_resample(_to_float(engine.say(word + ".", "en-us", MAX_RATE_WPM)),
                                 engine.sample_rate))
        if len(speech) < 0.05 * SAMPLE_RATE:
            raise ValueError(f"espeak-ng produces no speech for the word {word!r}; "
                             "check its spelling")
        if len(speech) > MAX_SPEECH_SECONDS * SAMPLE_RATE:
            too_long.append(word)
    if too_long:
        raise ValueError(f"{too_long} take longer than {MAX_SPEECH_SECONDS} s even at espeak-ng's "
                         "fastest rate; use shorter keywords")


def _parameters(words, num_speakers, seed, validation_percentage, testing_percentage,
                noise_seconds) -> dict:
    return {"generator_version": GENERATOR_VERSION, "words": list(words),
            "num_speakers": int(num_speakers), "seed": int(seed),
            "validation_percentage": float(validation_percentage),
            "testing_percentage": float(testing_percentage),
            "noise_seconds": float(noise_seconds)}


def _existing_set(out_dir: Path, parameters: dict) -> bool:
    """True if out_dir is already this data set; raises if it holds something else."""
    if not out_dir.exists():
        return False
    if not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} exists and is not a folder; choose another --out")
    marker = out_dir / COMPLETE_MARKER
    if marker.is_file():
        try:
            recorded = json.loads(marker.read_text())
        except (OSError, json.JSONDecodeError):
            recorded = {}
        if {k: recorded.get(k) for k in parameters} == parameters:
            return True
        differing = sorted(k for k in parameters if recorded.get(k) != parameters[k])
        raise FileExistsError(f"{out_dir} holds a synthetic set made with different parameters "
                              f"({', '.join(differing)}); delete it or choose another --out")
    if any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists but is not a complete synthetic set (no "
                              f"{COMPLETE_MARKER}); delete it or choose another --out")
    return False


def _default_jobs(num_clips: int) -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    # Starting a worker costs about a second (imports), worth it only for a few hundred clips.
    return max(1, min(cpus, 8, num_clips // 300))


def synthesize(out_dir: str | os.PathLike, words: Sequence[str] | str = SPEECH_COMMANDS_V2_WORDS,
               num_speakers: int = DEFAULT_NUM_SPEAKERS, seed: int = 0, progress: bool = True,
               validation_percentage: float = 10.0, testing_percentage: float = 10.0,
               noise_seconds: float = DEFAULT_NOISE_SECONDS, jobs: int | None = None) -> Path:
    """Synthesize a keyword data set in the Speech Commands layout; returns ``out_dir``.

    Args:
        out_dir: folder to create. If it is already a complete set with the same parameters,
            it is returned at once; if it holds anything else, FileExistsError.
        words: the words (lower-case a-z; a comma-separated string works too).
        num_speakers: synthetic speakers; each says every word once.
        seed: everything (voices, splits, noise) is deterministic for a seed.
        progress: show a tqdm progress bar.
        validation_percentage, testing_percentage: share of speakers in each list.
        noise_seconds: length of each ``_background_noise_`` recording.
        jobs: worker processes (default: one per CPU up to 8, fewer for small sets).

    The set is built in a temporary sibling folder that is renamed into place once complete,
    with ``.complete`` (JSON of the parameters and counts) already inside, so a half-written
    folder never looks complete.
    """
    out_dir = Path(out_dir)
    words = _check_words(words)
    if noise_seconds <= 0:
        raise ValueError(f"noise_seconds must be positive, got {noise_seconds}")
    parameters = _parameters(words, num_speakers, seed, validation_percentage,
                             testing_percentage, noise_seconds)
    if _existing_set(out_dir, parameters):
        return out_dir

    engine = _engine()
    speakers = make_speakers(num_speakers, seed, validation_percentage, testing_percentage,
                             engine.variants)
    _check_sayable(engine, words)
    num_clips = len(words) * len(speakers)
    jobs = _default_jobs(num_clips) if jobs is None else int(jobs)
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial",
                                    dir=out_dir.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; a data set is not
    started = time.perf_counter()
    try:
        for word in words:
            (staging / word).mkdir()
        results, noise_files = _run(staging, speakers, words, seed, noise_seconds, jobs,
                                    progress, num_clips)
        _write_lists(staging, speakers, words)
        _write_speaker_table(staging / "speakers.csv", speakers)
        fits = {k: sum(r["fits"][k] for r in results) for k in ("as is", "faster", "cropped")}
        seconds = np.concatenate([r["speech_seconds"] for r in results])
        summary = {
            **parameters,
            "espeak_ng_version": engine.version,
            "num_clips": num_clips,
            "speakers_per_split": {split: sum(s.split == split for s in speakers)
                                   for split in ("training", "validation", "testing")},
            "clips_sped_up": fits["faster"],
            "clips_cropped": fits["cropped"],
            "speech_seconds_median": round(float(np.median(seconds)), 3),
            "noise_files": noise_files,
        }
        (staging / COMPLETE_MARKER).write_text(json.dumps(summary, indent=1) + "\n")
        _move_into_place(staging, out_dir, parameters)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if fits["cropped"]:
        warnings.warn(f"{fits['cropped']} clips were longer than {MAX_SPEECH_SECONDS} s even at "
                      "espeak-ng's fastest rate and were cropped to their loudest part",
                      stacklevel=2)
    if progress:
        print(f"synthesized {num_clips} clips in {time.perf_counter() - started:.1f} s "
              f"({jobs} process{'es' if jobs > 1 else ''})", file=sys.stderr)
    return out_dir


def _run(staging: Path, speakers: list[Speaker], words: tuple[str, ...], seed: int,
         noise_seconds: float, jobs: int, progress: bool, num_clips: int
         ) -> tuple[list[dict], list[str]]:
    """Write every speaker's clips and the background noise; per-speaker counts and the
    noise file names."""
    from tqdm.auto import tqdm

    results = []
    with tqdm(total=num_clips, unit="clip", desc="synthesizing", disable=not progress) as bar:
        if jobs == 1:
            for speaker in speakers:
                results.append(_synthesize_speaker(str(staging), speaker, words, seed))
                bar.update(len(words))
            bar.set_postfix_str("background noise")
            return results, _write_background_noise(staging, seed, words, noise_seconds)
        # Processes, not threads: espeak-ng is not thread-safe. "spawn" avoids forking a
        # parent that may hold TensorFlow's threads.
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
            noise = pool.submit(_write_background_noise, str(staging), seed, words, noise_seconds)
            futures = [pool.submit(_synthesize_speaker, str(staging), s, words, seed)
                       for s in speakers]
            try:
                for future in concurrent.futures.as_completed(futures):
                    results.append(future.result())
                    bar.update(len(words))
                bar.set_postfix_str("background noise")
                noise_files = noise.result()
            except BaseException:
                for future in (noise, *futures):
                    future.cancel()
                raise
    return results, noise_files


def _write_lists(staging: Path, speakers: list[Speaker], words: Sequence[str]) -> None:
    for split, filename in (("validation", "validation_list.txt"), ("testing", "testing_list.txt")):
        lines = sorted(f"{word}/{s.speaker_id}_nohash_0.wav"
                       for s in speakers if s.split == split for word in words)
        (staging / filename).write_text("".join(line + "\n" for line in lines))


def _write_speaker_table(path: Path, speakers: list[Speaker]) -> None:
    fields = [f.name for f in dataclasses.fields(Speaker)]
    with path.open("w", newline="") as table:
        writer = csv.DictWriter(table, fieldnames=fields)
        writer.writeheader()
        for speaker in speakers:
            writer.writerow(dataclasses.asdict(speaker))


def _move_into_place(staging: Path, out_dir: Path, parameters: dict) -> None:
    if out_dir.is_dir() and not any(out_dir.iterdir()):
        out_dir.rmdir()
    try:
        staging.rename(out_dir)
    except OSError:
        # Another process may have finished the same set meanwhile; that is fine.
        if not _existing_set(out_dir, parameters):
            raise


# --------------------------------------------------------------------------- command line

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data_setup.synthetic",
        description="Synthesize an offline keyword data set (espeak-ng) in the Speech Commands "
                    "layout.")
    parser.add_argument("--out", default="data/synthetic",
                        help="output folder (default: %(default)s)")
    parser.add_argument("--words", default=",".join(SPEECH_COMMANDS_V2_WORDS),
                        help="comma-separated words (default: the 35 Speech Commands V2 words)")
    parser.add_argument("--speakers", type=int, default=DEFAULT_NUM_SPEAKERS,
                        help="number of synthetic speakers (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="worker processes (default: one per CPU, up to 8)")
    parser.add_argument("--validation_percentage", type=float, default=10.0,
                        help="percent of speakers in validation_list.txt (default: %(default)s)")
    parser.add_argument("--testing_percentage", type=float, default=10.0,
                        help="percent of speakers in testing_list.txt (default: %(default)s)")
    parser.add_argument("--noise_seconds", type=float, default=DEFAULT_NOISE_SECONDS,
                        help="length of each background-noise file (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        out = synthesize(args.out, words=args.words, num_speakers=args.speakers, seed=args.seed,
                         progress=not args.quiet, validation_percentage=args.validation_percentage,
                         testing_percentage=args.testing_percentage,
                         noise_seconds=args.noise_seconds, jobs=args.jobs)
    except (ValueError, FileExistsError, SynthesisError) as error:
        parser.exit(2, f"error: {error}\n")
    summary = json.loads((out / COMPLETE_MARKER).read_text())
    splits = summary["speakers_per_split"]
    print(f"Synthetic data set in {out.resolve()}:\n"
          f"  {summary['num_clips']} clips = {len(summary['words'])} words x "
          f"{summary['num_speakers']} speakers (training/validation/testing speakers: "
          f"{splits['training']}/{splits['validation']}/{splits['testing']})\n"
          f"  {len(summary['noise_files'])} background-noise files of "
          f"{summary['noise_seconds']:g} s; espeak-ng {summary['espeak_ng_version']}, "
          f"seed {summary['seed']}\n"
          f"  median speech length {summary['speech_seconds_median']} s; "
          f"{summary['clips_sped_up']} clips sped up, {summary['clips_cropped']} cropped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
