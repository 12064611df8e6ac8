"""Speech Commands data: index a folder, split, label, load, augment and feed tf.data.

``audio`` reads files into clip arrays (with a cache), ``augment`` is the batch augmentation
in TF ops, ``dataset`` indexes, splits and labels a folder and feeds tf.data.

The semantics follow kws_streaming's ``data/input_data.py`` (the "seed"); flag names and
defaults are the seed's (``data_dir``, ``wanted_words``, ``silence_percentage``, ...).

Folder layout read by :class:`SpeechCommands` (what ``python -m data_setup.speech_commands`` and
``python -m data_setup.synthetic`` write)::

    DATA_DIR/<word>/*.wav|*.flac        one folder per word (names are lower-cased, as the seed)
    DATA_DIR/_background_noise_/*.wav   long noise recordings for mixing and for silence
    DATA_DIR/validation_list.txt        optional, "word/file.wav" per line
    DATA_DIR/testing_list.txt           optional

Decisions (where the seed leaves room or where kwsnb differs on purpose):

* Labels are ``_silence_, _unknown_`` + ``wanted_words`` in that order (the seed's order). When
  both ``silence_percentage`` and ``unknown_percentage`` are 0 the two special labels are left
  out, so ``wanted_words=<all 35 words>, silence_percentage=0, unknown_percentage=0`` gives the
  35-label task with exactly the 35 words as labels (what the seed's ``--split_data 0`` recipes
  train).
* ``split_by='hash'`` is the seed's :func:`which_set` (SHA-1 of the file name up to
  ``_nohash_``, i.e. by speaker). ``split_by='lists'`` reads validation_list.txt/testing_list.txt
  (matched by ``word/stem`` so .flac copies of listed .wav files match); everything else is
  training. The default ``'auto'`` uses the lists when either file lists any clip and the hash
  otherwise. Both split by speaker; a subset such as speech_commands_lite is cut by its lists
  (its 675 listed clips all hash to validation too, but so do 119 unlisted ones, and its
  testing list is empty because its test clips live in a separate folder).
* Silence and unknown entries are added per partition exactly as the seed does: ceil(pct% x
  known-word clips) each, unknowns drawn with ``random.Random(59185)`` in the seed's call order.
  Only the clips the index uses are decoded (the 12-label task needs ~40% of V2's clips).
* Training samples are shuffled epoch by epoch (``tf.data`` ``shuffle`` + ``repeat``); the seed
  drew each batch with replacement. Validation/testing keep the index order, unaugmented; their
  silence is all zeros as in the seed, unless ``eval_silence_noise=True``.
* Augmentation (training only, seed order): stretch x U(1-resample, 1+resample) with bilinear
  resize and centre crop/pad, volume x U(1-volume_resample, 1+volume_resample), shift by
  U[-shift, shift) samples zero-filled, then with probability background_frequency add a
  random one-clip slice of a random noise file at gain U(0, background_volume), clip to +-1.
  Silence is noise only. It runs as TF ops on whole batches inside ``tf.data``, compiled with
  XLA (~9x faster than op by op on CPU, so the pipeline leaves the cores to the model), with
  stateless random numbers: a seed reproduces it exactly. Clips reach the pipeline through
  ``tf.numpy_function`` (a gather from the in-memory array), so the clips are never copied into
  a graph; such a pipeline cannot be serialized (tf.data service), which kwsnb does not need.
* Noise level flags beyond the seed (defaults keep the seed's behaviour): the official noise files
  are quiet (RMS 0.003-0.006) while the test set's _silence_ clips are much louder (median RMS
  ~0.02), so ``background_rms`` rescales every noise file to that RMS before mixing and
  ``silence_volume`` sets the gain range for silence examples separately from
  ``background_volume``.
* Clips are stored in memory once, as int16 ``[clips, samples]`` (105k V2 clips ~ 3.4 GB) and
  decoded by a thread pool. The decoded array is cached as ``.npy`` under ``cache_dir``
  (default ``$KWSNB_CACHE_DIR`` or ``~/.cache/kwsnb/clips``), keyed by the folder, the sample
  rate and clip length, and the path, size and mtime of every file it holds: a changed, added or
  removed file gives a new key, so a stale cache is never read.
* Bad audio files never stop a run: unreadable and empty files are skipped, stereo files are
  downmixed, other sample rates are resampled (soxr), files longer than a clip are cropped to
  their start (as the seed's decoder does), and each of these is reported in one summary warning
  (:class:`AudioFileWarning`) that names the first few files. Clips shorter than a clip are
  zero-padded at the end silently: that is the seed's behaviour and ~10% of Speech Commands clips
  are shorter than 1 s.
"""

from kwsnb.data.audio import (AUDIO_EXTENSIONS, AudioFileWarning, default_cache_dir, load_clip,
                              load_clips)
from kwsnb.data.augment import (SPEC_AUGMENT_DEFAULTS, BackgroundNoise, augment_audio,
                                spec_augment, time_stretch_and_shift)
from kwsnb.data.dataset import (BACKGROUND_NOISE_DIR_NAME, DEFAULT_FLAGS, DEFAULT_WANTED_WORDS,
                                MAKE_DATA_HINT, MAX_NUM_WAVS_PER_CLASS, RANDOM_SEED,
                                SILENCE_LABEL, SPLIT_LIST_FILES, SPLITS, UNKNOWN_WORD_LABEL,
                                DataFolder, MissingDataError, SpeechCommands, read_test_folder,
                                scan_folder, which_set)

__all__ = [
    "AUDIO_EXTENSIONS", "AudioFileWarning", "BACKGROUND_NOISE_DIR_NAME", "BackgroundNoise",
    "DEFAULT_FLAGS", "DEFAULT_WANTED_WORDS", "DataFolder", "MAKE_DATA_HINT",
    "MAX_NUM_WAVS_PER_CLASS", "MissingDataError", "RANDOM_SEED", "SILENCE_LABEL", "SPLITS",
    "SPLIT_LIST_FILES", "SPEC_AUGMENT_DEFAULTS", "SpeechCommands", "UNKNOWN_WORD_LABEL",
    "augment_audio", "default_cache_dir", "load_clip", "load_clips", "read_test_folder",
    "scan_folder", "spec_augment", "time_stretch_and_shift", "which_set",
]
