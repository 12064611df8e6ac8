"""Synthetic speakers: voice, prosody, split, and how their clips sound (room, microphone, level).

A speaker is one espeak-ng English accent x voice variant with its own speaking rate, pitch,
loudness, microphone band, room and noise floor, all drawn from the seed; ``render_clip`` turns
trimmed speech into a finished 1 s clip (steps 3-6 of ``data_setup.synthetic``'s docstring).
"""
from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable

import numpy as np
from scipy import signal

from data_setup import noise as noise_gen
from data_setup.espeak import Espeak, SynthesisError


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


# Independent random streams per purpose, so that e.g. the split never shifts the voices.
(VOICE_STREAM, SPEAKER_STREAM, UTTERANCE_STREAM, SPLIT_STREAM, BABBLE_STREAM,
 ROOM_STREAM) = range(6)


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


def voice_pool(seed: int, variants_available: Iterable[str]) -> tuple[list[str], list[str]]:
    """Shuffled accent x variant voices, female-sounding and male-sounding."""
    available = set(variants_available) | {""}
    rng = np.random.default_rng([seed, VOICE_STREAM])
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
    order = np.random.default_rng([seed, SPLIT_STREAM]).permutation(num_speakers)
    splits = ["training"] * num_speakers
    for i in order[:num_validation]:
        splits[i] = "validation"
    for i in order[num_validation:num_validation + num_testing]:
        splits[i] = "testing"

    female, male = voice_pool(seed, variants_available)
    speakers, used_ids = [], set()
    for index in range(num_speakers):
        rng = np.random.default_rng([seed, SPEAKER_STREAM, index])
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


def trim(audio: np.ndarray, frame_length: int = 512, hop_length: int = 64) -> np.ndarray:
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


def loudest_window(audio: np.ndarray, length: int) -> np.ndarray:
    """The ``length``-sample stretch with the most energy, with 10 ms fades at both ends."""
    energy = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
    start = int(np.argmax(energy[length:] - energy[:-length]))
    window = audio[start:start + length].copy()
    fade = int(0.01 * SAMPLE_RATE)
    ramp = np.linspace(0.0, 1.0, fade, dtype=window.dtype)
    window[:fade] *= ramp
    window[-fade:] *= ramp[::-1]
    return window


def room_response(speaker: Speaker, rng: np.random.Generator) -> np.ndarray:
    """Direct sound plus an exponentially decaying noise tail (the speaker's room)."""
    length = int(speaker.rt60_s * SAMPLE_RATE)
    t = np.arange(1, length) / SAMPLE_RATE
    tail = rng.standard_normal(length - 1) * np.exp(-6.908 * t / speaker.rt60_s)  # -60 dB at RT60
    tail *= np.sqrt(10.0 ** (-speaker.direct_to_reverb_db / 10.0) / np.sum(tail ** 2))
    return np.concatenate([[1.0], tail])


def microphone_response(speaker: Speaker) -> np.ndarray:
    highpass = signal.butter(2, speaker.highpass_hz, btype="highpass", fs=SAMPLE_RATE, output="sos")
    lowpass = signal.butter(4, speaker.lowpass_hz, btype="lowpass", fs=SAMPLE_RATE, output="sos")
    return np.concatenate([highpass, lowpass])


def noise_floor(color: str, rng: np.random.Generator) -> np.ndarray:
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
    clip += level * 10.0 ** (-speaker.snr_db / 20.0) * noise_floor(speaker.noise_color, rng)
    peak = float(np.max(np.abs(clip)))
    if peak > PEAK_LIMIT:
        clip *= PEAK_LIMIT / peak
    return np.round(clip * 32767.0).astype(np.int16)


def to_float(samples: np.ndarray) -> np.ndarray:
    return samples.astype(np.float32) / 32768.0


def resample(audio: np.ndarray, source_rate: int) -> np.ndarray:
    """To 16 kHz with soxr's high-quality resampler (what librosa.resample uses by default,
    called directly: importing librosa costs seconds per worker process)."""
    import soxr
    return soxr.resample(audio, source_rate, SAMPLE_RATE, quality="HQ")


def speak(engine: Espeak, text: str, voice: str, rate: float, pitch: float,
          pitch_range: float, noise_seed: int = 1) -> tuple[np.ndarray, str]:
    """Trimmed 16 kHz float speech of at most MAX_SPEECH_SECONDS, and how it was made to fit
    (``"as is"``, ``"faster"`` or ``"cropped"``)."""
    max_samples = int(MAX_SPEECH_SECONDS * SAMPLE_RATE)
    fitted = "as is"
    for _ in range(4):
        speech = trim(resample(to_float(engine.say(text, voice, round(rate), round(pitch),
                                                       round(pitch_range), noise_seed)),
                                 engine.sample_rate))
        if len(speech) <= max_samples or rate >= MAX_RATE_WPM:
            break
        rate = min(MAX_RATE_WPM, rate * len(speech) / max_samples * 1.05)
        fitted = "faster"
    if len(speech) > max_samples:
        speech, fitted = loudest_window(speech, max_samples), "cropped"
    return speech, fitted


SAMPLE_RATE = 16000


CLIP_SAMPLES = 16000
