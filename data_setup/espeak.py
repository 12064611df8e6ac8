"""The espeak-ng speech engine from the ``espeakng-loader`` wheel, one private copy per utterance.

espeak-ng keeps synthesis state in static variables (pitch flutter phase, gain control, echo
buffer), so the same call gives different audio depending on what was said before, and seeds its
breath noise from the clock. ``Espeak`` therefore loads a fresh private copy of the library for
every utterance (about 1 ms) with a fixed noise seed: each clip depends only on what is said and
how. ``speak`` returns 16 kHz float audio (espeak-ng's 22,050 Hz resampled with soxr).
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np


class SynthesisError(RuntimeError):
    """espeak-ng could not be loaded or could not say something."""


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


def load_engine() -> Espeak:
    """This process's espeak-ng (created on first use)."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = Espeak()
    return _ENGINE


_ENGINE: Espeak | None = None
