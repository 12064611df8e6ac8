"""Augmentation as TF ops on whole batches (the seed's order), and SpecAugment masks."""
from __future__ import annotations

import dataclasses
import functools
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import tensorflow as tf

from kwsnb.data.audio import AudioFileWarning, read_int16, warn_issues


# SpecAugment flags as the seed names them; off by default and in every 30k recipe.
SPEC_AUGMENT_DEFAULTS = {
    "use_spec_augment": 0,
    "time_masks_number": 2,
    "time_mask_max_size": 10,
    "frequency_masks_number": 2,
    "frequency_mask_max_size": 5,
}


@dataclasses.dataclass(frozen=True)
class BackgroundNoise:
    """Noise recordings concatenated into one float32 array, for slicing inside the graph."""

    samples: np.ndarray  # float32 [total]
    starts: np.ndarray  # int32 [files]
    lengths: np.ndarray  # int32 [files]
    names: tuple[str, ...]

    @classmethod
    def from_arrays(cls, arrays: Sequence[np.ndarray], names: Sequence[str] | None = None,
                    rms: float | None = None) -> "BackgroundNoise":
        """``rms`` rescales each recording to that RMS (None keeps it as recorded)."""
        arrays = [np.asarray(a, np.float32) for a in arrays]
        if rms is not None:
            arrays = [a * (rms / max(float(np.sqrt(np.mean(a.astype(np.float64) ** 2))), 1e-9))
                      for a in arrays]
        lengths = np.array([len(a) for a in arrays], np.int32)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int32)
        samples = np.concatenate(arrays) if arrays else np.zeros(0, np.float32)
        return cls(samples, starts, lengths,
                   tuple(names) if names is not None else tuple(map(str, range(len(arrays)))))

    @classmethod
    def from_files(cls, paths: Sequence[Path], sample_rate: int = 16000, clip_samples: int = 16000,
                   rms: float | None = None) -> "BackgroundNoise":
        """Reads noise files; unreadable ones and ones not longer than a clip are left out
        with a warning naming them."""
        arrays, names, issues = [], [], []
        for path in paths:
            audio, file_issues = read_int16(Path(path), sample_rate, None)
            issues += [(kind, Path(path).name, detail) for kind, detail in file_issues]
            if audio is None:
                continue
            if len(audio) <= clip_samples:
                warnings.warn(f"background noise file {path} has {len(audio)} samples, not more "
                              f"than one clip ({clip_samples}); it is not used for mixing.",
                              AudioFileWarning, stacklevel=2)
                continue
            arrays.append(audio.astype(np.float32) / 32768.0)
            names.append(Path(path).name)
        if paths:
            warn_issues(issues, len(paths), str(Path(paths[0]).parent))
        return cls.from_arrays(arrays, names, rms)

    def __len__(self) -> int:
        return len(self.lengths)

    @functools.cached_property
    def variables(self):
        """(samples, starts, lengths) as tf.Variables, made once: tf.data and tf.function graphs
        capture a variable by reference, where they would copy ~25 MB of noise into every
        pipeline definition as a constant (seconds per ``dataset()`` call)."""
        with tf.init_scope():  # create eagerly even when first used while tracing a graph
            return tuple(tf.Variable(array, trainable=False, name=name) for array, name in
                         ((self.samples, "noise_samples"), (self.starts, "noise_starts"),
                          (self.lengths, "noise_lengths")))


    @functools.cached_property
    def compiled_augment(self):
        """The XLA-compiled augmentation for these noise variables. One function shared by all
        noise sets would reuse its first trace, which holds the first set's variables, and fail
        once that data set is gone (a second data set in the same notebook)."""
        return tf.function(_augment, jit_compile=True)


def time_stretch_and_shift(audio, factors, shifts):
    """The seed's resample + time shift, for a batch, as one gather.

    ``audio`` [B, N] float32; ``factors`` [B] stretch factors: the clip is resized to
    ``int(N * factor)`` samples by bilinear interpolation (``tf.image.resize``, half-pixel
    centres) and centre-cropped or zero-padded back to N (``tf.image.resize_with_crop_or_pad``);
    ``shifts`` [B] int: the result is delayed by ``shift`` samples (negative: advanced),
    zero-filled.
    """
    audio = tf.convert_to_tensor(audio, tf.float32)
    factors = tf.convert_to_tensor(factors, tf.float32)
    shifts = tf.convert_to_tensor(shifts, tf.int32)
    n = tf.shape(audio)[1]
    n_float = tf.cast(n, tf.float32)
    stretched = tf.cast(n_float * factors, tf.int32)  # truncation, as the seed's cast
    # Offset of output sample 0 inside the stretched clip: a crop starts (L-N)//2 in, a pad puts
    # the clip (N-L)//2 in.
    offsets = tf.where(stretched > n, (stretched - n) // 2, -((n - stretched) // 2))
    before_shift = tf.range(n)[tf.newaxis, :] - shifts[:, tf.newaxis]
    in_stretched = before_shift + offsets[:, tf.newaxis]
    valid = ((before_shift >= 0) & (before_shift < n)
             & (in_stretched >= 0) & (in_stretched < stretched[:, tf.newaxis]))
    # tf.image.resize's half-pixel mapping from output to input position, scale = in/out.
    scale = n_float / tf.cast(stretched, tf.float32)
    source = (tf.cast(in_stretched, tf.float32) + 0.5) * scale[:, tf.newaxis] - 0.5
    source_floor = tf.floor(source)
    fraction = source - source_floor
    lower = tf.clip_by_value(tf.cast(source_floor, tf.int32), 0, n - 1)
    upper = tf.clip_by_value(tf.cast(source_floor, tf.int32) + 1, 0, n - 1)
    lower_values = tf.gather(audio, lower, batch_dims=1)
    upper_values = tf.gather(audio, upper, batch_dims=1)
    result = lower_values + (upper_values - lower_values) * fraction
    return tf.where(valid, result, tf.zeros_like(result))


def augment_audio(audio, is_silence, noise: BackgroundNoise | None, seed, *,
                  resample: float = 0.15, volume_resample: float = 0.0,
                  time_shift_samples: int = 1600, background_frequency: float = 0.8,
                  background_volume: float = 0.1, silence_volume: float | None = None,
                  jit_compile: bool = False):
    """The seed's training augmentation for a batch ``audio`` [B, N] float32 in [-1, 1]
    (or int16 PCM, scaled by 1/32768 like the seed's decoder).

    In order: stretch x U(1-resample, 1+resample) (bilinear, centre crop/pad), foreground volume
    x U(1-volume_resample, 1+volume_resample) (0 for ``is_silence`` [B] bool examples), shift by
    U[-time_shift_samples, time_shift_samples) samples, then with probability
    ``background_frequency`` add a random N-sample slice of a random noise recording at gain
    U(0, background_volume) (U(0, silence_volume) for silence, default the same), clip to +-1.
    ``seed`` is a stateless seed (shape [2] ints): the same seed gives the same batch.
    ``jit_compile`` runs it through XLA, which fuses its ~30 element-wise ops and gathers into a
    few loops (~9x faster on CPU; the float rounding of positions differs by ~1e-4 at most).
    """
    with_noise = noise is not None and len(noise) > 0 and background_frequency > 0
    if with_noise:
        noise_arrays = noise.variables
    else:
        noise_arrays = (np.zeros(1, np.float32), np.zeros(1, np.int32), np.ones(1, np.int32))
    function = _augment
    if jit_compile:
        function = noise.compiled_augment if with_noise else _augment_xla
    return function(
        audio, is_silence, seed, *noise_arrays, with_noise=with_noise, resample=float(resample),
        volume_resample=float(volume_resample), time_shift_samples=int(time_shift_samples),
        background_frequency=float(background_frequency),
        background_volume=float(background_volume),
        silence_volume=float(background_volume if silence_volume is None else silence_volume))


def _augment(audio, is_silence, seed, noise_samples, noise_starts, noise_lengths, *,
             with_noise, resample, volume_resample, time_shift_samples, background_frequency,
             background_volume, silence_volume):
    # The noise arrays are arguments, not captured constants, so XLA does not fold ~25 MB of
    # noise into the compiled program (that doubled the compile time).
    audio = tf.convert_to_tensor(audio)
    if audio.dtype == tf.int16:  # stored clips: converting here fuses it into the same loops
        audio = tf.cast(audio, tf.float32) / 32768.0
    audio = tf.cast(audio, tf.float32)
    is_silence = tf.convert_to_tensor(is_silence, tf.bool)
    batch, n = tf.shape(audio)[0], tf.shape(audio)[1]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=7)

    if resample > 0 or time_shift_samples > 0:
        factors = (tf.random.stateless_uniform([batch], seeds[0], 1.0 - resample, 1.0 + resample)
                   if resample > 0 else tf.ones([batch]))
        shifts = (tf.random.stateless_uniform([batch], seeds[1], -time_shift_samples,
                                              time_shift_samples, dtype=tf.int32)
                  if time_shift_samples > 0 else tf.zeros([batch], tf.int32))
        audio = time_stretch_and_shift(audio, factors, shifts)
    gain = (tf.random.stateless_uniform([batch], seeds[2], 1.0 - volume_resample,
                                        1.0 + volume_resample)
            if volume_resample > 0 else tf.ones([batch]))
    audio = audio * tf.where(is_silence, 0.0, gain)[:, tf.newaxis]

    if with_noise:
        noise_lengths = tf.convert_to_tensor(noise_lengths, tf.int32)
        which = tf.random.stateless_uniform([batch], seeds[3], 0, tf.size(noise_lengths),
                                            dtype=tf.int32)
        room = tf.cast(tf.gather(noise_lengths, which) - n, tf.float32)  # start in [0, len - N)
        offsets = tf.cast(tf.random.stateless_uniform([batch], seeds[4]) * room, tf.int32)
        first = tf.gather(tf.convert_to_tensor(noise_starts, tf.int32), which) + offsets
        slices = tf.gather(tf.convert_to_tensor(noise_samples, tf.float32),
                           first[:, tf.newaxis] + tf.range(n)[tf.newaxis, :])
        used = tf.random.stateless_uniform([batch], seeds[5]) < background_frequency
        top = tf.where(is_silence, silence_volume, background_volume)
        volumes = tf.random.stateless_uniform([batch], seeds[6]) * top
        audio = audio + slices * tf.where(used, volumes, 0.0)[:, tf.newaxis]
    return tf.clip_by_value(audio, -1.0, 1.0)


def spec_augment(features, training=False, *, time_masks_number: int = 2,
                 time_mask_max_size: int = 10, frequency_masks_number: int = 2,
                 frequency_mask_max_size: int = 5):
    """SpecAugment-style masking of features [B, T, D] (the seed's ``SpecAugment`` layer).

    Only when ``training`` (a Python bool or a bool tensor): ``time_masks_number`` masks of width
    U[0, time_mask_max_size) frames and ``frequency_masks_number`` masks of width
    U[0, frequency_mask_max_size) coefficients set features to 0, each at a uniform position.
    Unlike the seed (one mask per batch) every example gets its own masks. Call it from model
    code between the feature layer and the body; it is off by default (``use_spec_augment=0``).
    """
    features = tf.convert_to_tensor(features)
    if features.shape.rank != 3:
        raise ValueError(f"spec_augment expects features [batch, time, coefficients], got shape "
                         f"{features.shape}")

    def masked():
        out = _mask_along(features, 1, time_masks_number, time_mask_max_size)
        return _mask_along(out, 2, frequency_masks_number, frequency_mask_max_size)

    if training is None or isinstance(training, (bool, int)):
        return masked() if training else features
    return tf.cond(tf.cast(training, tf.bool), masked, lambda: features)


def _mask_along(features, axis: int, count: int, max_size: int):
    if count <= 0 or max_size <= 1:  # widths are drawn from [0, max_size): nothing to mask
        return features
    batch, size = tf.shape(features)[0], tf.shape(features)[axis]
    positions = tf.range(size)[tf.newaxis, :]
    keep = tf.ones([batch, size], tf.bool)
    for _ in range(count):
        width = tf.random.uniform([batch, 1], 0, max_size, tf.int32)
        width = tf.minimum(width, size)
        start = tf.cast(tf.random.uniform([batch, 1]) * tf.cast(size - width + 1, tf.float32),
                        tf.int32)
        keep &= ~((positions >= start) & (positions < start + width))
    mask = tf.cast(keep, features.dtype)
    return features * (mask[:, :, tf.newaxis] if axis == 1 else mask[:, tf.newaxis, :])


_augment_xla = tf.function(_augment, jit_compile=True)
