"""MFCC front end: raw 16 kHz audio -> the seed's ``mfcc_op`` features, TFLite builtins only.

``MFCC`` is the Keras layer; ``reference`` is an independent numpy implementation of the same
definition (the ground truth the layer is tested against). ``FRAME_SAMPLES`` (640) and
``PACKET_SAMPLES`` (320) are what streaming code feeds the layer: a ring buffer of the previous
``FRAME_SAMPLES - PACKET_SAMPLES`` samples plus one new packet gives exactly one frame.
"""
from kwsnb.features import reference
from kwsnb.features.mfcc import (
    FEATURE_DEFAULTS,
    FRAME_SAMPLES,
    LOG_FLOOR,
    MFCC,
    PACKET_SAMPLES,
    compact_filterbank,
    dct_matrix,
    fft_length,
    frame_samples,
    hz_to_mel,
    mel_weight_matrix,
    num_frames,
    packet_samples,
    spectrogram_bin_range,
    split_dct,
    validate_feature_flags,
)

__all__ = [
    "FEATURE_DEFAULTS", "FRAME_SAMPLES", "LOG_FLOOR", "MFCC", "PACKET_SAMPLES",
    "compact_filterbank", "dct_matrix", "fft_length", "frame_samples", "hz_to_mel",
    "mel_weight_matrix", "num_frames",
    "packet_samples", "reference", "spectrogram_bin_range", "split_dct",
    "validate_feature_flags",
]
