"""MFCC front end with the seed's ``mfcc_op`` semantics, built from TFLite builtin ops only.

kws_streaming's ``mfcc_op`` features chain TensorFlow's ``AudioSpectrogram`` and ``Mfcc`` ops.
Both are *custom* ops in TFLite. This layer computes the same features from TFLite builtins:

1. frames of ``window_size_ms`` every ``window_stride_ms``, no padding (16000 samples -> 49);
2. periodic Hann window, zero-padded to the next power of two (640 -> 1024-point FFT, 513
   bins): ``tf.signal.rfft`` -> RFFT2D, ``tf.abs`` -> COMPLEX_ABS;
3. the ``Mfcc`` op takes ``sqrt`` of its input. That input is ``|X|**2`` when
   ``fft_magnitude_squared`` is true, so the filterbank sums the magnitude ``|X|`` (taken
   directly, no square/sqrt round trip); with ``fft_magnitude_squared=False`` the input is
   ``|X|`` and the filterbank sums ``sqrt(|X|)``;
4. the ``Mfcc`` op's triangular mel filterbank (mel = 1127 ln(1 + f/700), peak 1, no area
   normalisation, only FFT bins in the op's start/end range). Each bin feeds at most two
   channels, so the filterbank is stored as two (channel id, weight) pairs per bin and applied
   as MUL + UNSORTED_SEGMENT_SUM (``compact_filterbank``, ``MFCC.filterbank``), not as a dense
   [485, 80] matmul: 7.8 KB of constants instead of 155 KB, same sums;
5. ``log(max(mel, 1e-12))``;
6. DCT-II scaled by ``sqrt(2 / mel_num_bins)`` on every row, first ``dct_num_features`` rows,
   as a constant matmul, or (``SPLIT_DCT = True``) as two half-size matmuls on the sum and
   difference of the mel channels' two halves (the DCT matrix's even/odd symmetry,
   ``split_dct``): half the constants, 1% more time per clip;
7. ``(mfcc - coefficient_mean) * coefficient_scale``, two non-trainable weights (zeros and
   ones, the seed's MFCCs, until ``MFCC.adapt`` measures training audio), folded into the DCT's
   matrices and bias (no op of its own, see ``MFCC.dct``): every coefficient is
   centred, and a coefficient that varies more than coefficient 1 does (in practice only
   coefficient 0, the log energy) is scaled down to coefficient 1's spread. ``kwsnb.train``
   adapts only with ``--normalize_features 1``; by default the layer is the seed's front end.
   Why: coefficient 0 spans about -350..40 while coefficients 20-39 have a standard deviation
   near 0.6, so the one int8 scale of the feature tensor (what an int8 body reads) gave the
   higher coefficients a step of 1.5, two or three levels; int8 lost 0.1-1.7 points of accuracy
   on SC-lite-9. Centred and capped, the step is about 0.2. Full standardization (every spread
   1) fixes int8 as well but trains slower (mobilenet, 3,000 steps: 84.3% validation accuracy
   against 89.3% unscaled): Adam moves each weight by about the learning rate, so a feature's
   effective learning rate follows its spread, and the seed's recipe is tuned for the low
   coefficients' large spreads. Capping only coefficient 0 keeps the others' spreads (88.0%),
   but not quite the seed's float accuracy at a short schedule, hence opt-in
   (docs/sc_lite9_findings.md).

The front end's constants in TFLite total about 23 KB at the defaults (window 2.5 KB,
filterbank 7.8 KB, DCT 12.8 KB, or 6.4 KB split; float32, because float16 weights would add
errors of ~1e-4 of the log-mel values), against 168 KB with the dense filterbank, at the same
accuracy and latency (measured: MFCC error against the reference unchanged at float32 rounding
level). The int8 TFLite formats store the mel weights as int16 with a DEQUANTIZE (run once per
interpreter): 1.9 KB less, MFCC error unchanged (``kwsnb.tflite.convert.int16_front_end_constants``,
which also says why the DCT and window stay float32).

Frames are independent, so the layer streams exactly: one ``frame_samples`` window (the previous
``frame_samples - packet_samples`` samples plus the new packet) gives one frame.
``kwsnb.features.reference`` is an independent numpy implementation of the same definition.
"""
from __future__ import annotations

import math
import warnings

import keras
import numpy as np
import tensorflow as tf

# The seed's feature flags (kws_streaming base_parser names) and the values its 30k recipes use.
FEATURE_DEFAULTS = {
    "sample_rate": 16000,
    "window_size_ms": 40.0,
    "window_stride_ms": 20.0,
    "fft_magnitude_squared": True,
    "mel_num_bins": 80,
    "mel_lower_edge_hertz": 20.0,
    "mel_upper_edge_hertz": 7600.0,
    "dct_num_features": 40,
}

# The Mfcc op clamps the filterbank output to this before the log.
LOG_FLOOR = 1e-12

# DCT as two half-size matmuls on the even/odd symmetric parts (split_dct: half the DCT's
# constants, 6.4 KB less at 40 coefficients, 4.8 KB at 30) or one dense matmul. Split costs 7
# more TFLite ops: measured +1% per 1 s clip (0.459 vs 0.455 ms, tc_resnet tflite_float, 1
# thread), nothing per 20 ms packet. Off, so that no latency gets worse; turn it on where
# flash matters more than 5 us per clip. Read when an MFCC layer is created.
SPLIT_DCT = False


def hz_to_mel(frequency_hz):
    """The Mfcc op's mel scale: 1127 ln(1 + f / 700)."""
    return 1127.0 * np.log1p(np.asarray(frequency_hz, dtype=np.float64) / 700.0)


def frame_samples(sample_rate: int = FEATURE_DEFAULTS["sample_rate"],
                  window_size_ms: float = FEATURE_DEFAULTS["window_size_ms"]) -> int:
    """Samples per analysis window (640 at the defaults), rounded as kws_streaming rounds it."""
    return int(round(sample_rate * window_size_ms / 1000.0))


def packet_samples(sample_rate: int = FEATURE_DEFAULTS["sample_rate"],
                   window_stride_ms: float = FEATURE_DEFAULTS["window_stride_ms"]) -> int:
    """Samples between frames (320 at the defaults): the packet size of a streaming model."""
    return int(round(sample_rate * window_stride_ms / 1000.0))


def num_frames(num_samples: int,
               sample_rate: int = FEATURE_DEFAULTS["sample_rate"],
               window_size_ms: float = FEATURE_DEFAULTS["window_size_ms"],
               window_stride_ms: float = FEATURE_DEFAULTS["window_stride_ms"]) -> int:
    """Frames the front end gives for a clip of ``num_samples`` (16000 -> 49, 640 -> 1)."""
    window = frame_samples(sample_rate, window_size_ms)
    stride = packet_samples(sample_rate, window_stride_ms)
    if num_samples < window:
        return 0
    return 1 + (num_samples - window) // stride


def fft_length(window_samples: int) -> int:
    """The AudioSpectrogram op's FFT length: the next power of two >= the window (640 -> 1024)."""
    return 1 << (int(window_samples) - 1).bit_length()


FRAME_SAMPLES = frame_samples()    # 640
PACKET_SAMPLES = packet_samples()  # 320


def validate_feature_flags(sample_rate=FEATURE_DEFAULTS["sample_rate"],
                           window_size_ms=FEATURE_DEFAULTS["window_size_ms"],
                           window_stride_ms=FEATURE_DEFAULTS["window_stride_ms"],
                           fft_magnitude_squared=FEATURE_DEFAULTS["fft_magnitude_squared"],
                           mel_num_bins=FEATURE_DEFAULTS["mel_num_bins"],
                           mel_lower_edge_hertz=FEATURE_DEFAULTS["mel_lower_edge_hertz"],
                           mel_upper_edge_hertz=FEATURE_DEFAULTS["mel_upper_edge_hertz"],
                           dct_num_features=FEATURE_DEFAULTS["dct_num_features"]) -> dict:
    """Checks the feature flags and returns them normalised (ints, floats, a bool).

    Raises ValueError naming the offending flag. Warns (as the Mfcc op logs) when some mel
    channels get almost no FFT bins because there are too many channels for the FFT resolution.
    """
    def integer(name, value, minimum):
        if isinstance(value, bool) or not float(value).is_integer() or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
        return int(value)

    sample_rate = integer("sample_rate", sample_rate, 1)
    mel_num_bins = integer("mel_num_bins", mel_num_bins, 1)
    dct_num_features = integer("dct_num_features", dct_num_features, 1)
    if dct_num_features > mel_num_bins:
        raise ValueError(f"dct_num_features ({dct_num_features}) must be <= mel_num_bins "
                         f"({mel_num_bins}): the DCT keeps a subset of the mel channels")
    if fft_magnitude_squared not in (True, False, 0, 1):
        raise ValueError("fft_magnitude_squared must be a bool (or 0/1), got "
                         f"{fft_magnitude_squared!r}")

    window = frame_samples(sample_rate, window_size_ms)
    stride = packet_samples(sample_rate, window_stride_ms)
    if window < 2:
        raise ValueError(f"window_size_ms ({window_size_ms}) gives {window} samples at "
                         f"{sample_rate} Hz; the spectrogram needs at least 2")
    if stride < 1:
        raise ValueError(f"window_stride_ms ({window_stride_ms}) gives {stride} samples at "
                         f"{sample_rate} Hz; it needs at least 1")
    if window < stride:
        raise ValueError(f"window_size_ms ({window_size_ms}) is shorter than window_stride_ms "
                         f"({window_stride_ms}): samples between windows would be skipped and "
                         "the front end could not stream")

    nyquist = sample_rate / 2.0
    if not 0.0 <= mel_lower_edge_hertz:
        raise ValueError(f"mel_lower_edge_hertz must be >= 0, got {mel_lower_edge_hertz}")
    if mel_upper_edge_hertz <= mel_lower_edge_hertz:
        raise ValueError(f"mel_upper_edge_hertz ({mel_upper_edge_hertz}) must be above "
                         f"mel_lower_edge_hertz ({mel_lower_edge_hertz})")
    if mel_upper_edge_hertz > nyquist:
        raise ValueError(f"mel_upper_edge_hertz ({mel_upper_edge_hertz}) is above the Nyquist "
                         f"frequency ({nyquist} Hz at sample_rate {sample_rate})")

    flags = dict(sample_rate=sample_rate, window_size_ms=float(window_size_ms),
                 window_stride_ms=float(window_stride_ms),
                 fft_magnitude_squared=bool(fft_magnitude_squared), mel_num_bins=mel_num_bins,
                 mel_lower_edge_hertz=float(mel_lower_edge_hertz),
                 mel_upper_edge_hertz=float(mel_upper_edge_hertz),
                 dct_num_features=dct_num_features)

    weights = mel_weight_matrix(fft_length(window) // 2 + 1, sample_rate, mel_num_bins,
                                flags["mel_lower_edge_hertz"], flags["mel_upper_edge_hertz"])
    starved = np.flatnonzero(weights.sum(axis=0) < 0.5)
    if starved.size:
        warnings.warn(f"mel_num_bins={mel_num_bins}: {starved.size} mel channels starting at "
                      f"{starved[0]} get almost no FFT bins (too many channels for the "
                      f"{sample_rate / fft_length(window):.2f} Hz bin spacing); they will be "
                      "near-constant. Use fewer mel bins or a wider frequency range.",
                      stacklevel=2)
    return flags


def spectrogram_bin_range(num_spectrogram_bins: int, sample_rate: int,
                          lower_edge_hertz: float, upper_edge_hertz: float) -> tuple[int, int]:
    """The Mfcc op's inclusive range of FFT bins that feed the filterbank (2..486 at defaults).

    The op always skips DC and, like HTK, starts half a bin above the lower edge.
    """
    hz_per_bin = 0.5 * sample_rate / (num_spectrogram_bins - 1)
    return int(1.5 + lower_edge_hertz / hz_per_bin), int(upper_edge_hertz / hz_per_bin)


def mel_weight_matrix(num_spectrogram_bins: int = 513,
                      sample_rate: int = FEATURE_DEFAULTS["sample_rate"],
                      mel_num_bins: int = FEATURE_DEFAULTS["mel_num_bins"],
                      lower_edge_hertz: float = FEATURE_DEFAULTS["mel_lower_edge_hertz"],
                      upper_edge_hertz: float = FEATURE_DEFAULTS["mel_upper_edge_hertz"],
                      ) -> np.ndarray:
    """The Mfcc op's filterbank as a [num_spectrogram_bins, mel_num_bins] float64 matrix.

    mel_num_bins + 2 edges equally spaced in mel from the lower to the upper edge; channel k is a
    triangle rising from edge k to 1 at edge k + 1 and falling to 0 at edge k + 2. Rows outside
    the op's bin range are zero. Unlike tf.signal.linear_to_mel_weight_matrix, the op's first
    triangle starts at the lower edge itself and it uses 1127 ln(1 + f/700) with its own bin range.
    """
    hz_per_bin = 0.5 * sample_rate / (num_spectrogram_bins - 1)
    start, end = spectrogram_bin_range(num_spectrogram_bins, sample_rate, lower_edge_hertz,
                                       upper_edge_hertz)
    mel_low, mel_high = hz_to_mel(lower_edge_hertz), hz_to_mel(upper_edge_hertz)
    edges = mel_low + (mel_high - mel_low) / (mel_num_bins + 1) * np.arange(mel_num_bins + 2)
    left, centre, right = edges[:-2], edges[1:-1], edges[2:]

    bin_mel = hz_to_mel(np.arange(num_spectrogram_bins) * hz_per_bin)[:, np.newaxis]
    rising = (bin_mel - left) / (centre - left)
    falling = (right - bin_mel) / (right - centre)
    weights = np.clip(np.minimum(rising, falling), 0.0, None)
    used = (np.arange(num_spectrogram_bins) >= start) & (np.arange(num_spectrogram_bins) <= end)
    return weights * used[:, np.newaxis]


def dct_matrix(mel_num_bins: int = FEATURE_DEFAULTS["mel_num_bins"],
               dct_num_features: int = FEATURE_DEFAULTS["dct_num_features"]) -> np.ndarray:
    """The Mfcc op's DCT-II as a [mel_num_bins, dct_num_features] float64 matrix.

    Every coefficient is scaled by sqrt(2 / mel_num_bins); coefficient 0 is not given the
    orthonormal 1/sqrt(2), so this is not tf.signal.dct(norm="ortho").
    """
    channel = np.arange(mel_num_bins)[:, np.newaxis] + 0.5
    coefficient = np.arange(dct_num_features)[np.newaxis, :]
    return math.sqrt(2.0 / mel_num_bins) * np.cos(np.pi / mel_num_bins * coefficient * channel)


def compact_filterbank(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A [bins, channels] filterbank with at most two adjacent channels per bin, in compact form.

    Returns ``(channels, values)``: int32 [2, bins] channel ids and float32 [2, bins, 1, 1]
    weights such that ``filterbank[b, c] == sum of values[s, b] over the s with channels[s, b]
    == c``. Slot 0 of bin b holds its lowest channel's weight, slot 1 the next channel's (0 and
    the same channel where the bin feeds only one, or none). The Mfcc op's triangles overlap
    pairwise, so every bin fits; ValueError if one does not.
    """
    weights = np.asarray(weights, np.float64)
    bins, count = weights.shape
    channels = np.zeros((2, bins), np.int32)
    values = np.zeros((2, bins), np.float64)
    previous = 0
    for b in range(bins):
        used = np.flatnonzero(weights[b])
        if used.size > 2 or (used.size == 2 and used[1] != used[0] + 1):
            raise ValueError(f"filterbank bin {b} feeds channels {used.tolist()}; the compact "
                             "form takes at most two adjacent channels per bin")
        first = int(used[0]) if used.size else previous
        second = min(first + 1, count - 1) if used.size == 2 else first
        channels[:, b] = first, second
        values[:used.size, b] = weights[b, used]
        previous = first
    return channels, values.astype(np.float32)[:, :, np.newaxis, np.newaxis]


def split_dct(mel_num_bins: int = FEATURE_DEFAULTS["mel_num_bins"],
              dct_num_features: int = FEATURE_DEFAULTS["dct_num_features"]) -> dict:
    """The op's DCT-II (``dct_matrix``) factored by its symmetry, for half the constants.

    Row N-1-n of the DCT matrix is (-1)**k times row n in column k, so with N = mel_num_bins
    even, ``low`` the first N/2 log-mel channels and ``high`` the last N/2 reversed: the even
    coefficients are ``(low + high) @ even`` and the odd ones ``(low - high) @ odd``, both
    [N/2, about K/2] float32; ``order`` (int32 [K]) puts ``concat([even, odd])`` back in
    coefficient order. For odd N: ``{"dense": dct_matrix}`` (float32), the other keys None.
    """
    matrix = dct_matrix(mel_num_bins, dct_num_features)
    if mel_num_bins % 2:
        return {"dense": matrix.astype(np.float32), "even": None, "odd": None, "order": None}
    half = mel_num_bins // 2
    even_count = (dct_num_features + 1) // 2
    order = np.empty(dct_num_features, np.int32)
    order[0::2] = np.arange(even_count)
    order[1::2] = even_count + np.arange(dct_num_features // 2)
    return {"dense": None, "even": matrix[:half, 0::2].astype(np.float32),
            "odd": matrix[:half, 1::2].astype(np.float32), "order": order}


@keras.saving.register_keras_serializable(package="kwsnb")
class MFCC(keras.layers.Layer):
    """Raw audio [batch, samples] -> MFCC [batch, frames, dct_num_features] (seed's mfcc_op).

    ``frames = num_frames(samples)``: 49 for 16000 samples, exactly 1 for ``frame_samples`` (640)
    samples, which is how a streaming model uses it (a ring buffer of the previous
    ``frame_samples - packet_samples`` samples plus the new ``packet_samples`` packet).
    The window, compact filterbank and split DCT are constants of the graph; the two weights,
    ``coefficient_mean`` and ``coefficient_scale`` [dct_num_features] (non-trainable, zeros and
    ones by default: the seed's MFCCs), are set from data by ``adapt`` before training and saved
    with the model's weights.
    """

    def __init__(self,
                 sample_rate: int = FEATURE_DEFAULTS["sample_rate"],
                 window_size_ms: float = FEATURE_DEFAULTS["window_size_ms"],
                 window_stride_ms: float = FEATURE_DEFAULTS["window_stride_ms"],
                 fft_magnitude_squared: bool = FEATURE_DEFAULTS["fft_magnitude_squared"],
                 mel_num_bins: int = FEATURE_DEFAULTS["mel_num_bins"],
                 mel_lower_edge_hertz: float = FEATURE_DEFAULTS["mel_lower_edge_hertz"],
                 mel_upper_edge_hertz: float = FEATURE_DEFAULTS["mel_upper_edge_hertz"],
                 dct_num_features: int = FEATURE_DEFAULTS["dct_num_features"],
                 name: str = "mfcc",
                 **kwargs):
        # Audio and log energies need float32 even under a mixed-precision policy.
        kwargs.setdefault("dtype", "float32")
        super().__init__(name=name, **kwargs)
        self.flags = validate_feature_flags(
            sample_rate=sample_rate, window_size_ms=window_size_ms,
            window_stride_ms=window_stride_ms, fft_magnitude_squared=fft_magnitude_squared,
            mel_num_bins=mel_num_bins, mel_lower_edge_hertz=mel_lower_edge_hertz,
            mel_upper_edge_hertz=mel_upper_edge_hertz, dct_num_features=dct_num_features)
        # features, training -> features, applied only while training (None: nothing); not
        # saved with the model, so set it again on a model rebuilt for more training.
        self.training_transform = None
        self.frame_samples = frame_samples(sample_rate, window_size_ms)
        self.packet_samples = packet_samples(sample_rate, window_stride_ms)
        self.fft_length = fft_length(self.frame_samples)

        num_bins = self.fft_length // 2 + 1
        self._bin_start, self._bin_end = spectrogram_bin_range(
            num_bins, sample_rate, mel_lower_edge_hertz, mel_upper_edge_hertz)
        # The filterbank as two (channel, weight) pairs per FFT bin of the op's range, summed by
        # channel (compact_filterbank), and the DCT dense or split by its even/odd symmetry
        # (SPLIT_DCT): 23 KB (or 17 KB) of constants instead of 168 KB of dense matrices.
        self._mel_channels, self._mel_weights = compact_filterbank(mel_weight_matrix(
            num_bins, sample_rate, mel_num_bins, mel_lower_edge_hertz,
            mel_upper_edge_hertz)[self._bin_start:self._bin_end + 1])
        self._dct = (split_dct(mel_num_bins, dct_num_features) if SPLIT_DCT else
                     {"dense": dct_matrix(mel_num_bins, dct_num_features).astype(np.float32)})
        # Periodic Hann (the AudioSpectrogram op's window): 0.5 - 0.5 cos(2 pi n / N).
        self._window = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(self.frame_samples)
                                           / self.frame_samples)).astype(np.float32)

    def num_frames(self, num_samples: int) -> int:
        """Frames this layer gives for ``num_samples`` of audio."""
        return num_frames(num_samples, self.flags["sample_rate"], self.flags["window_size_ms"],
                          self.flags["window_stride_ms"])

    def _check_input_shape(self, shape):
        if len(shape) != 2:
            raise ValueError(f"{self.name}: MFCC takes raw audio shaped [batch, samples], got "
                             f"shape {tuple(shape)}")
        samples = shape[-1]
        if samples is not None and samples < self.frame_samples:
            raise ValueError(f"{self.name}: {samples} samples is shorter than one window "
                             f"({self.frame_samples} samples = window_size_ms "
                             f"{self.flags['window_size_ms']} at {self.flags['sample_rate']} Hz)")

    def build(self, input_shape):
        self._check_input_shape(input_shape)
        self.coefficient_mean = self.add_weight(
            name="coefficient_mean", shape=(self.flags["dct_num_features"],),
            initializer="zeros", trainable=False)
        self.coefficient_scale = self.add_weight(
            name="coefficient_scale", shape=(self.flags["dct_num_features"],),
            initializer="ones", trainable=False)
        super().build(input_shape)

    def adapt(self, audio, batch_size: int = 100) -> tuple[np.ndarray, np.ndarray]:
        """Measures each coefficient over ``audio`` [n, samples] (training clips, augmented as in
        training): ``coefficient_mean`` = its mean, ``coefficient_scale`` = min(1, spread of the
        widest coefficient after 0 / its spread), spreads being standard deviations (see the
        module docstring). Returns (mean, scale). Builds the layer if needed."""
        audio = np.asarray(audio, np.float32)
        if audio.ndim != 2 or not len(audio):
            raise ValueError(f"{self.name}: adapt needs audio shaped [clips, samples], got "
                             f"shape {audio.shape}")
        if not self.built:
            self.build((None, audio.shape[-1]))
        features = np.concatenate([
            self.seed_mfcc(tf.constant(audio[start:start + batch_size])).numpy().reshape(
                -1, self.flags["dct_num_features"])
            for start in range(0, len(audio), batch_size)]).astype(np.float64)
        mean = features.mean(axis=0).astype(np.float32)
        spread = np.maximum(features.std(axis=0), 1e-6)
        ceiling = spread[1:].max() if len(spread) > 1 else spread[0]
        scale = np.minimum(1.0, ceiling / spread).astype(np.float32)
        self.coefficient_mean.assign(mean)
        self.coefficient_scale.assign(scale)
        return mean, scale

    def compute_output_shape(self, input_shape):
        samples = input_shape[-1]
        frames = None if samples is None else self.num_frames(samples)
        return (input_shape[0], frames, self.flags["dct_num_features"])

    def frames(self, audio):
        """[batch, samples] -> [batch, frames, frame_samples]: a window every packet_samples.

        No padding, like the AudioSpectrogram op.

        tf.signal.frame converts to a dozen dynamic-shape TFLite ops (SHAPE, RANGE, GATHER, ...).
        When the window is a small multiple of gcd(window, stride) (640 = 2 x 320 at the
        defaults), the same frames come from reshaping the audio into gcd-sized blocks and
        concatenating strided slices of them: static shapes, and only RESHAPE, STRIDED_SLICE and
        CONCATENATION in TFLite.
        """
        block = math.gcd(self.frame_samples, self.packet_samples)
        blocks_per_frame = self.frame_samples // block
        samples = audio.shape[-1]
        if samples is None or blocks_per_frame > 16:
            return tf.signal.frame(audio, self.frame_samples, self.packet_samples, pad_end=False)
        frame_count = self.num_frames(samples)
        blocks_per_step = self.packet_samples // block
        used = (frame_count - 1) * self.packet_samples + self.frame_samples
        blocks = tf.reshape(audio if used == samples else audio[:, :used],
                            [-1, used // block, block])
        last = (frame_count - 1) * blocks_per_step + 1
        parts = [blocks[:, offset:offset + last:blocks_per_step]
                 for offset in range(blocks_per_frame)]
        return parts[0] if len(parts) == 1 else tf.concat(parts, axis=-1)

    def log_mel_spectrogram(self, audio):
        """[batch, samples] -> natural-log mel filterbank energies [batch, frames, mel_num_bins]."""
        audio = tf.cast(audio, tf.float32)
        self._check_input_shape(audio.shape)
        windowed = self.frames(audio) * tf.constant(self._window)
        spectrum = tf.signal.rfft(windowed, fft_length=[self.fft_length])  # zero-pads to 1024
        magnitude = tf.abs(spectrum)[..., self._bin_start:self._bin_end + 1]
        if not self.flags["fft_magnitude_squared"]:
            # The op's spectrogram is then |X| and its filterbank takes sqrt of that.
            magnitude = tf.sqrt(magnitude)
        mel = self.filterbank(magnitude)
        return tf.math.log(tf.maximum(mel, LOG_FLOOR))

    def filterbank(self, magnitude):
        """[batch, frames, used bins] -> mel filterbank energies [batch, frames, mel_num_bins].

        Each FFT bin feeds at most two channels (the falling side of one triangle, the rising
        side of the next), so instead of a dense [bins, channels] matmul: bins to the front
        (TRANSPOSE), times the two weights of each bin (MUL, broadcast to [2, bins, batch,
        frames]), summed by channel (UNSORTED_SEGMENT_SUM with segment ids [2, bins]), channels
        to the back (TRANSPOSE). A weight a bin does not have is 0 (its id is then any channel).
        """
        channels = tf.math.unsorted_segment_sum(
            tf.constant(self._mel_weights) * tf.transpose(magnitude, [2, 0, 1]),
            tf.constant(self._mel_channels), num_segments=self.flags["mel_num_bins"])
        return tf.transpose(channels, [1, 2, 0])

    def dct(self, log_mel, scale=None, bias=None):
        """[..., mel_num_bins] -> [..., dct_num_features]: the op's DCT-II (see split_dct),
        each coefficient k then times ``scale[k]`` plus ``bias[k]`` if given. The scale goes
        into the DCT matrices and the bias into the matmuls' bias (constants once converted),
        so the normalization adds no op; a separate MUL would be fused by the TFLite converter
        into the body's first FULLY_CONNECTED, pulling that layer into the front end's scope
        (kept float by the int8 export)."""
        def matmul(x, matrix, columns):
            matrix = tf.constant(matrix)
            if scale is not None:
                matrix = matrix * tf.gather(scale, columns)
            y = tf.matmul(x, matrix)
            return y if bias is None else y + tf.gather(bias, columns)

        count = self.flags["dct_num_features"]
        if self._dct["dense"] is not None:
            return matmul(log_mel, self._dct["dense"], np.arange(count))
        half = self.flags["mel_num_bins"] // 2
        low, high = log_mel[..., :half], tf.reverse(log_mel[..., half:], axis=[-1])
        even = matmul(low + high, self._dct["even"], np.arange(0, count, 2))
        odd = matmul(low - high, self._dct["odd"], np.arange(1, count, 2))
        return tf.gather(tf.concat([even, odd], axis=-1), self._dct["order"], axis=-1)

    def seed_mfcc(self, audio):
        """The seed's MFCCs [batch, frames, dct_num_features], before the normalization."""
        return self.dct(self.log_mel_spectrogram(audio))

    def call(self, inputs, training=None):
        features = self._normalized_mfcc(inputs)
        if self.training_transform is not None and training:
            # Training-only (e.g. SpecAugment masks, set by kwsnb.train): inference, streaming
            # and every export build the graph with training off, so it adds nothing there.
            return self.training_transform(features, training)
        return features

    def _normalized_mfcc(self, inputs):
        # (seed_mfcc - coefficient_mean) * coefficient_scale, inside the DCT's matmuls.
        scale = tf.convert_to_tensor(self.coefficient_scale)
        mean = tf.convert_to_tensor(self.coefficient_mean)
        log_mel = self.log_mel_spectrogram(inputs)
        dense = self._dct["dense"]
        if dense is None:
            return self.dct(log_mel, scale, -mean * scale)
        # Dense: the DCT's columns are orthogonal (squared norms 2, 1, 1, ...), so shifting the
        # log-mel by -D (mean / norms) subtracts the mean from every coefficient. An ADD after
        # the matmul would be fused by the converter into the body's first FULLY_CONNECTED;
        # this one goes into the DCT's own.
        norms = np.sum(dense.astype(np.float64) ** 2, axis=0).astype(np.float32)
        shift = -tf.linalg.matvec(tf.constant(dense), mean / tf.constant(norms))
        return self.dct(log_mel + shift, scale)

    def get_config(self):
        return {**super().get_config(), **self.flags}
