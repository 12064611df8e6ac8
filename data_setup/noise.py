"""Generated background noise for the synthetic data set's ``_background_noise_/`` folder.

Seven recordings, each a float array in [-1, 1] at 16 kHz:

==============  ============================================================================
white_noise     flat spectrum
pink_noise      power falling as 1/f
brown_noise     power falling as 1/f^2 (rumble), rolled off below 20 Hz
babble          five to eight talkers of synthetic speech overlapped (the talkers' audio is
                passed in, so this module needs no speech engine)
hum             mains hum (50 or 60 Hz) with harmonics and a slight frequency wander
running_tap     band-limited turbulent noise, flickering fast, with droplet pings
fan             low-passed rumble with blade-pass tones, modulated at the rotation rate
==============  ============================================================================

Levels deliberately differ from the official Speech Commands noise files, which are quiet
(RMS 0.003-0.006 of full scale) while real test-set ``_silence_`` clips are much louder (median
RMS about 0.02, 90th percentile about 0.2). Each file has its own base RMS (``BASE_RMS``) and
a slow level drift of up to +-``LEVEL_DRIFT_DB`` dB, so one-second slices cover roughly
0.003-0.15 RMS before any augmentation gain.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import signal

SAMPLE_RATE = 16000

# RMS of each file before the slow level drift, as a fraction of full scale.
BASE_RMS = {
    "white_noise": 0.01,
    "pink_noise": 0.02,
    "brown_noise": 0.04,
    "babble": 0.03,
    "hum": 0.008,
    "running_tap": 0.04,
    "fan": 0.025,
}
LEVEL_DRIFT_DB = 8.0
PEAK_LIMIT = 0.99
# Random streams are seeded with [seed, _NOISE_STREAM, kind]; data_setup.synthetic uses
# small stream numbers for speech, so the same seed never reuses a stream.
_NOISE_STREAM = 100

NOISE_NAMES = tuple(BASE_RMS)


def _unit_rms(x: np.ndarray) -> np.ndarray:
    return x / max(float(np.sqrt(np.mean(x ** 2))), 1e-12)


def coloured_noise(num_samples: int, exponent: float, rng: np.random.Generator,
                   sample_rate: int = SAMPLE_RATE, low_cut_hz: float = 20.0) -> np.ndarray:
    """Gaussian noise whose power spectrum falls as 1/f**exponent (0 white, 1 pink, 2 brown).

    Shaped in the frequency domain; everything below ``low_cut_hz`` gets the gain at
    ``low_cut_hz`` (no DC, no drifting random walk). Returned at unit RMS.
    """
    spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    freqs = np.fft.rfftfreq(num_samples, 1.0 / sample_rate)
    spectrum *= np.maximum(freqs, low_cut_hz) ** (-exponent / 2.0)
    spectrum[0] = 0.0
    return _unit_rms(np.fft.irfft(spectrum, n=num_samples))


def _smooth_random(num_samples: int, rng: np.random.Generator, points_per_second: float,
                   sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A smooth random curve in [-1, 1]: uniform values at evenly spaced knots, joined by
    band-limited interpolation."""
    num_knots = max(4, int(num_samples / sample_rate * points_per_second) + 2)
    knots = rng.uniform(-1.0, 1.0, num_knots)
    curve = signal.resample(knots, num_knots * 8)  # band-limited (smooth) interpolation
    positions = np.linspace(0, len(curve) - 1, num_samples)
    curve = np.interp(positions, np.arange(len(curve)), curve)
    return np.clip(curve, -1.0, 1.0)


def level_drift(num_samples: int, rng: np.random.Generator, spread_db: float = LEVEL_DRIFT_DB,
                sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Gain curve drifting slowly (knots every ~3 s) within +-spread_db dB."""
    return 10.0 ** (spread_db * _smooth_random(num_samples, rng, 1 / 3.0, sample_rate) / 20.0)


def hum(num_samples: int, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mains hum: 50 or 60 Hz and harmonics (odd ones stronger, like transformer buzz)."""
    mains_hz = rng.choice([50.0, 60.0])
    wander = 0.002 * _smooth_random(num_samples, rng, 0.5, sample_rate)  # +-0.2 % frequency
    phase = 2 * np.pi * mains_hz * np.cumsum(1.0 + wander) / sample_rate
    out = np.zeros(num_samples)
    for harmonic in range(1, 16):
        amplitude = rng.uniform(0.5, 1.0) / harmonic ** (0.7 if harmonic % 2 else 1.3)
        out += amplitude * np.sin(harmonic * phase + rng.uniform(0, 2 * np.pi))
    out = _unit_rms(out) + 0.05 * coloured_noise(num_samples, 1.0, rng, sample_rate)
    return _unit_rms(out)


def running_tap(num_samples: int, rng: np.random.Generator,
                sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Water from a tap: band-passed noise with fast turbulent flicker, plus droplet pings."""
    band = signal.butter(4, [rng.uniform(600, 1000), rng.uniform(5000, 7000)], btype="bandpass",
                         fs=sample_rate, output="sos")
    rush = signal.sosfilt(band, rng.standard_normal(num_samples))
    flicker_lp = signal.butter(2, 25.0, fs=sample_rate, output="sos")
    flicker = np.abs(signal.sosfilt(flicker_lp, rng.standard_normal(num_samples)))
    rush *= 0.6 + flicker / flicker.mean()
    pings = np.zeros(num_samples)
    ping_length = int(0.03 * sample_rate)
    ping_t = np.arange(ping_length) / sample_rate
    num_pings = int(6 * num_samples / sample_rate)
    for start in rng.integers(0, num_samples - ping_length, size=num_pings):
        freq = rng.uniform(1200, 3500)
        pings[start:start + ping_length] += (rng.uniform(0.5, 2.0) * np.exp(-ping_t / 0.006)
                                             * np.sin(2 * np.pi * freq * ping_t))
    return _unit_rms(_unit_rms(rush) + 0.3 * pings)


def fan(num_samples: int, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A fan: low-passed broadband rumble, blade-pass tones, amplitude modulated by rotation."""
    rotation_hz = rng.uniform(10, 25)
    blades = int(rng.integers(3, 8))
    lowpass = signal.butter(2, rng.uniform(1200, 2500), fs=sample_rate, output="sos")
    air = signal.sosfilt(lowpass, coloured_noise(num_samples, 1.0, rng, sample_rate))
    air = _unit_rms(air)
    speed = 1.0 + 0.01 * _smooth_random(num_samples, rng, 0.3, sample_rate)
    rotation_phase = 2 * np.pi * rotation_hz * np.cumsum(speed) / sample_rate
    tones = sum(np.sin(k * blades * rotation_phase + rng.uniform(0, 2 * np.pi)) / k
                for k in (1, 2, 3))
    modulation = 1.0 + rng.uniform(0.1, 0.3) * np.sin(rotation_phase)
    return _unit_rms((air + 0.25 * _unit_rms(tones)) * modulation)


def babble(num_samples: int, talkers: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Overlap talker streams (float arrays of continuous speech) at random relative levels.

    Each stream is looped to the needed length from a random offset, so short streams work.
    """
    if not talkers:
        raise ValueError("babble needs at least one talker stream")
    out = np.zeros(num_samples)
    for stream in talkers:
        stream = np.asarray(stream, dtype=np.float64)
        if stream.size == 0:
            continue
        looped = np.resize(np.roll(stream, -int(rng.integers(0, len(stream)))), num_samples)
        out += _unit_rms(looped) * 10.0 ** (rng.uniform(-6.0, 0.0) / 20.0)
    return _unit_rms(out)


def generate(num_samples: int, seed: int, babble_talkers: Sequence[np.ndarray],
             sample_rate: int = SAMPLE_RATE) -> dict[str, np.ndarray]:
    """All seven noise recordings as float32 arrays in [-1, 1], keyed by file stem.

    Deterministic for ``seed`` (each noise type draws from its own stream, so adding or
    dropping one type leaves the others unchanged).
    """
    makers = {
        "white_noise": lambda rng: coloured_noise(num_samples, 0.0, rng, sample_rate),
        "pink_noise": lambda rng: coloured_noise(num_samples, 1.0, rng, sample_rate),
        "brown_noise": lambda rng: coloured_noise(num_samples, 2.0, rng, sample_rate),
        "babble": lambda rng: babble(num_samples, babble_talkers, rng),
        "hum": lambda rng: hum(num_samples, rng, sample_rate),
        "running_tap": lambda rng: running_tap(num_samples, rng, sample_rate),
        "fan": lambda rng: fan(num_samples, rng, sample_rate),
    }
    recordings = {}
    for kind, (name, make) in enumerate(makers.items()):
        rng = np.random.default_rng([seed, _NOISE_STREAM, kind])
        audio = make(rng) * BASE_RMS[name] * level_drift(num_samples, rng, sample_rate=sample_rate)
        peak = float(np.max(np.abs(audio)))
        if peak > PEAK_LIMIT:  # rare: scale down rather than clip
            audio *= PEAK_LIMIT / peak
        recordings[name] = audio.astype(np.float32)
    return recordings
