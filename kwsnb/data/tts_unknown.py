"""Offline text-to-speech clips of non-keywords a data set lacks, as extra ``_unknown_`` examples.

Some words a detector will hear have almost no training clips: speech_commands_lite has 7-10
clips each of "on" and "off", which streams say often and which sound like "up". Trained without
them, a model calls them "up" (most of the SC-lite-10 models' false accepts, issue 23). The
``--tts_unknown_words on,off`` flag speaks such words with ``data_setup.synthetic`` (espeak-ng,
``TTS_SPEAKERS`` synthetic speakers, made once into the kwsnb cache) and adds them to the training
split as ``_unknown_`` through the ``--extra_unknown_dir`` path (``--extra_unknown_percentage``
sets how many).
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from kwsnb.data.audio import default_cache_dir

# Measured on tc_resnet (docs/sc_lite10_findings.md): 600 clips of on/off (7% of the training
# keyword clips) came from 300 speakers; 400 leave the sample a choice of speakers.
TTS_SPEAKERS = 400
TTS_SEED = 0
_WORD = re.compile(r"^[a-z]+$")


def parse_words(words: str | Iterable[str]) -> list[str]:
    """``"on,off"`` or ``["on", "off"]`` -> sorted unique words; ValueError naming a bad one."""
    items = words.split(",") if isinstance(words, str) else list(words)
    items = [str(item).strip().lower() for item in items if str(item).strip()]
    bad = [item for item in items if not _WORD.match(item)]
    if bad:
        raise ValueError(f"tts_unknown_words: {', '.join(map(repr, bad))}: not words of "
                         "letters a-z (give a comma-separated list such as on,off)")
    return sorted(set(items))


def tts_cache_dir() -> Path:
    """``$KWSNB_CACHE_DIR/tts``, else ``tts`` beside the clip cache (``~/.cache/kwsnb/tts``)."""
    if os.environ.get("KWSNB_CACHE_DIR"):
        return Path(os.environ["KWSNB_CACHE_DIR"]) / "tts"
    return default_cache_dir().parent / "tts"


def tts_unknown_folder(words: str | Iterable[str], wanted_words: Iterable[str] = (),
                       progress: bool = True, cache_dir: str | Path | None = None) -> Path:
    """The Speech Commands-layout folder of ``words`` spoken by ``TTS_SPEAKERS`` synthetic
    speakers (all in the training split), synthesized on first use (a few seconds per word)."""
    chosen = parse_words(words)
    if not chosen:
        raise ValueError("tts_unknown_words is empty: give comma-separated words such as on,off")
    keywords = sorted(set(chosen) & {str(word) for word in wanted_words})
    if keywords:
        raise ValueError(f"tts_unknown_words {', '.join(keywords)}: keywords (--wanted_words) "
                         "cannot be _unknown_ examples; leave them out")
    from data_setup import synthetic

    out = Path(cache_dir or tts_cache_dir()) / (
        f"{'-'.join(chosen)}_{TTS_SPEAKERS}spk_seed{TTS_SEED}_v{synthetic.GENERATOR_VERSION}")
    try:
        return synthetic.synthesize(out, words=chosen, num_speakers=TTS_SPEAKERS, seed=TTS_SEED,
                                    progress=progress, validation_percentage=0.0,
                                    testing_percentage=0.0)
    except FileExistsError as error:  # its advice ("choose another --out") is the CLI's
        raise FileExistsError(f"tts_unknown_words: the cached TTS folder {out} is not usable "
                              f"({error}); delete it and run again: it is made anew") from None
