"""Numpy reference for the seed's ``mfcc_op`` features (TensorFlow's AudioSpectrogram + Mfcc ops).

This is the ground truth the Keras layer (``kwsnb.features.MFCC``) is tested against, written
separately from it: its own framing, ``np.fft.rfft``, and the filterbank built the way the Mfcc
op builds it (each FFT bin mapped to the channel whose triangle it falls on, its weight split
between that channel and the next). It needs only numpy and computes in float64, so it can also
serve as a readable spec for computing the same features outside the model (on a
microcontroller, say).

Definition, at the defaults (16 kHz, 40 ms / 20 ms, 80 mel bins 20-7600 Hz, 40 coefficients):
  frames    640-sample windows every 320 samples, no padding: 1 + (n - 640) // 320 frames.
  spectrum  periodic Hann window, zero-padded 1024-point real FFT, 513 bins;
            |X|^2 if fft_magnitude_squared else |X|  (AudioSpectrogram op).
  mel       sqrt of the spectrum, summed under mel_num_bins triangles (Mfcc op's filterbank).
  log       natural log of max(mel, 1e-12).
  dct       DCT-II, sqrt(2/N) * cos(pi/N * k * (n + 0.5)) on every row, first dct_num_features rows.
"""
from __future__ import annotations

import math

import numpy as np

LOG_FLOOR = 1e-12


def _mel(frequency_hz: float) -> float:
    return 1127.0 * math.log1p(frequency_hz / 700.0)


def window_and_stride(sample_rate: int = 16000, window_size_ms: float = 40.0,
                      window_stride_ms: float = 20.0) -> tuple[int, int]:
    """(window, stride) in samples, rounded as kws_streaming rounds them: (640, 320)."""
    return (int(round(sample_rate * window_size_ms / 1000.0)),
            int(round(sample_rate * window_stride_ms / 1000.0)))


def spectrogram(audio, sample_rate: int = 16000, window_size_ms: float = 40.0,
                window_stride_ms: float = 20.0, fft_magnitude_squared: bool = True) -> np.ndarray:
    """AudioSpectrogram op: 1-D audio -> [frames, fft_length // 2 + 1] (|X|^2 or |X|)."""
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 1:
        raise ValueError(f"spectrogram takes 1-D audio, got shape {audio.shape}")
    window, stride = window_and_stride(sample_rate, window_size_ms, window_stride_ms)
    fft_length = 1
    while fft_length < window:
        fft_length *= 2
    periodic_hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(window) / window)

    frame_count = 0 if len(audio) < window else 1 + (len(audio) - window) // stride
    rows = []
    for frame in range(frame_count):
        samples = audio[frame * stride:frame * stride + window] * periodic_hann
        spectrum = np.fft.rfft(samples, n=fft_length)  # rfft zero-pads to fft_length
        power = spectrum.real ** 2 + spectrum.imag ** 2
        rows.append(power if fft_magnitude_squared else np.sqrt(power))
    return np.array(rows, dtype=np.float64).reshape(frame_count, fft_length // 2 + 1)


class MelFilterbank:
    """The Mfcc op's filterbank, built bin by bin the way the op builds it.

    For each used FFT bin the op finds ``band``, the channel whose centre lies just below the
    bin (-1 below the first centre). The bin adds ``weight * sqrt(x)`` to ``band`` (the falling
    side of its triangle) and ``(1 - weight) * sqrt(x)`` to ``band + 1`` (the rising side of the
    next one). Channel centres are mel_num_bins + 1 points equally spaced in mel above the lower
    edge, the last one at the upper edge; triangles peak at 1 and are not area-normalised.
    """

    def __init__(self, num_spectrogram_bins: int = 513, sample_rate: int = 16000,
                 mel_num_bins: int = 80, mel_lower_edge_hertz: float = 20.0,
                 mel_upper_edge_hertz: float = 7600.0):
        self.num_channels = mel_num_bins
        mel_low, mel_high = _mel(mel_lower_edge_hertz), _mel(mel_upper_edge_hertz)
        spacing = (mel_high - mel_low) / (mel_num_bins + 1)
        self.centres = [mel_low + spacing * (i + 1) for i in range(mel_num_bins + 1)]

        hz_per_bin = 0.5 * sample_rate / (num_spectrogram_bins - 1)
        self.start_bin = int(1.5 + mel_lower_edge_hertz / hz_per_bin)  # never DC
        self.end_bin = int(mel_upper_edge_hertz / hz_per_bin)           # inclusive

        self.band = {}
        self.weight = {}
        channel = 0
        for i in range(self.start_bin, self.end_bin + 1):
            bin_mel = _mel(i * hz_per_bin)
            while channel < mel_num_bins and self.centres[channel] < bin_mel:
                channel += 1
            band = channel - 1
            self.band[i] = band
            if band >= 0:
                self.weight[i] = ((self.centres[band + 1] - bin_mel)
                                  / (self.centres[band + 1] - self.centres[band]))
            else:
                self.weight[i] = (self.centres[0] - bin_mel) / (self.centres[0] - mel_low)

    def __call__(self, spectrum_frames: np.ndarray) -> np.ndarray:
        """[frames, bins] spectrogram -> [frames, mel_num_bins] filterbank energies."""
        spectrum_frames = np.asarray(spectrum_frames, dtype=np.float64)
        mel = np.zeros((spectrum_frames.shape[0], self.num_channels))
        for i in range(self.start_bin, self.end_bin + 1):
            value = np.sqrt(spectrum_frames[:, i])
            weighted = value * self.weight[i]
            band = self.band[i]
            if band >= 0:
                mel[:, band] += weighted
            if band + 1 < self.num_channels:
                mel[:, band + 1] += value - weighted
        return mel


def dct(log_mel: np.ndarray, dct_num_features: int) -> np.ndarray:
    """The Mfcc op's DCT-II: [frames, N] -> [frames, dct_num_features]."""
    log_mel = np.asarray(log_mel, dtype=np.float64)
    n = log_mel.shape[-1]
    out = np.zeros(log_mel.shape[:-1] + (dct_num_features,))
    for k in range(dct_num_features):
        cosines = math.sqrt(2.0 / n) * np.cos(math.pi / n * k * (np.arange(n) + 0.5))
        out[..., k] = log_mel @ cosines
    return out


def log_mel_spectrogram(audio, sample_rate: int = 16000, window_size_ms: float = 40.0,
                        window_stride_ms: float = 20.0, fft_magnitude_squared: bool = True,
                        mel_num_bins: int = 80, mel_lower_edge_hertz: float = 20.0,
                        mel_upper_edge_hertz: float = 7600.0) -> np.ndarray:
    """Audio [samples] or [batch, samples] -> log filterbank energies [..., frames, mel_bins]."""
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim == 2:
        return np.stack([log_mel_spectrogram(clip, sample_rate, window_size_ms, window_stride_ms,
                                             fft_magnitude_squared, mel_num_bins,
                                             mel_lower_edge_hertz, mel_upper_edge_hertz)
                         for clip in audio])
    spec = spectrogram(audio, sample_rate, window_size_ms, window_stride_ms, fft_magnitude_squared)
    filterbank = MelFilterbank(spec.shape[1], sample_rate, mel_num_bins, mel_lower_edge_hertz,
                               mel_upper_edge_hertz)
    return np.log(np.maximum(filterbank(spec), LOG_FLOOR))


def mfcc(audio, sample_rate: int = 16000, window_size_ms: float = 40.0,
         window_stride_ms: float = 20.0, fft_magnitude_squared: bool = True,
         mel_num_bins: int = 80, mel_lower_edge_hertz: float = 20.0,
         mel_upper_edge_hertz: float = 7600.0, dct_num_features: int = 40) -> np.ndarray:
    """Audio [samples] or [batch, samples] -> MFCC [..., frames, dct_num_features] (float64)."""
    log_mel = log_mel_spectrogram(audio, sample_rate, window_size_ms, window_stride_ms,
                                  fft_magnitude_squared, mel_num_bins, mel_lower_edge_hertz,
                                  mel_upper_edge_hertz)
    return dct(log_mel, dct_num_features)
