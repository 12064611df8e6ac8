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
import concurrent.futures
import csv
import dataclasses
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

from data_setup import noise as noise_gen
from data_setup.espeak import Espeak, SynthesisError, load_engine
from data_setup.speakers import (BABBLE_STREAM, ENDING_WEIGHTS, ENDINGS,
                                 MAX_RATE_WPM, MAX_SPEECH_SECONDS, ROOM_STREAM, SAMPLE_RATE,
                                 UTTERANCE_STREAM, Speaker, make_speakers, microphone_response,
                                 render_clip, resample, room_response, speak, to_float, trim,
                                 voice_pool)

SPEECH_COMMANDS_V2_WORDS = (
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward",
    "four", "go", "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one",
    "right", "seven", "sheila", "six", "stop", "three", "tree", "two", "up", "visual", "wow",
    "yes", "zero",
)

BACKGROUND_NOISE_DIR = "_background_noise_"
COMPLETE_MARKER = ".complete"
# Bump when a change alters the audio, so an old folder is not mistaken for the new recipe.
GENERATOR_VERSION = 1

DEFAULT_NUM_SPEAKERS = 300
DEFAULT_NOISE_SECONDS = 60.0


# A word must be a plain English spelling: it names a folder and espeak-ng reads it aloud.
_WORD_PATTERN = re.compile(r"^[a-z]+(?:['-][a-z]+)*$")


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

# Words that sound like a Speech Commands word (homophones, or the word with a few more sounds):
# never "unknown" examples, they would teach the model that its keywords are unknown.
_SOUNDS_LIKE_A_KEYWORD = frozenset(
    "of an know now write rite to too for fore ate won once tree three free sicks sticks stopped "
    "upon onto offer often lefts rights downs goes gone nein mine line fine yet yell less".split())


def _common_words() -> tuple[str, ...]:
    """Every other word of the babble vocabulary (the rest stays for the babble noise) that is
    not a Speech Commands word, does not start with one and does not sound like one."""
    keywords = set(SPEECH_COMMANDS_V2_WORDS)
    eligible = [w for w in dict.fromkeys(_BABBLE_VOCABULARY)
                if w not in keywords and w not in _SOUNDS_LIKE_A_KEYWORD and len(w) > 1
                and not any(w.startswith(k) for k in keywords)]
    return tuple(eligible[::2])


# ``--words common``: a few hundred everyday English words for more and more varied _unknown_
# examples (kwsnb's --extra_unknown_dir), none of them a keyword or sounding like one.
COMMON_WORDS = _common_words()
WORD_LISTS = {"speech_commands": SPEECH_COMMANDS_V2_WORDS, "common": COMMON_WORDS}


def _utterance_rng(seed: int, speaker: Speaker, word: str) -> np.random.Generator:
    # crc32 of the word (not its position) so a clip does not change with the word list.
    return np.random.default_rng([seed, UTTERANCE_STREAM, speaker.index,
                                  zlib.crc32(word.encode())])


def _synthesize_speaker(out_dir: str, speaker: Speaker, words: Sequence[str], seed: int) -> dict:
    """Write one speaker's clip of every word; returns counts for the summary."""
    engine = load_engine()
    # One room and microphone per speaker: every word is "recorded" in the same place.
    room = room_response(speaker, np.random.default_rng([seed, ROOM_STREAM, speaker.index]))
    microphone = microphone_response(speaker)
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
    engine = load_engine()
    rng = np.random.default_rng([seed, BABBLE_STREAM])
    excluded = set(exclude)
    vocabulary = [w for w in _BABBLE_VOCABULARY if w not in excluded]
    female, male = voice_pool(seed, engine.variants)
    talkers = []
    # Talkers loop (from random offsets) inside noise.babble, so ~20 s each is plenty.
    talker_seconds = min(num_seconds, 20.0)
    for talker in range(int(rng.integers(5, 9))):
        pool = female if talker % 2 == 0 else male
        voice = pool[int(rng.integers(len(pool)))]
        parts, total = [], 0
        while total < talker_seconds * SAMPLE_RATE:
            sentence = " ".join(rng.choice(vocabulary, size=int(rng.integers(4, 10)))) + "."
            audio = resample(to_float(engine.say(sentence, voice, int(rng.uniform(140, 220)),
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
        words = WORD_LISTS.get(words.strip(), words.split(","))
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
        speech = trim(resample(to_float(engine.say(word + ".", "en-us", MAX_RATE_WPM)),
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
                              f"({', '.join(differing)}); choose another --out")
    if any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists but is not a complete synthetic set (no "
                              f"{COMPLETE_MARKER}); nothing in it was changed: choose another --out")
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

    engine = load_engine()
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
    parser.add_argument("--words", default="speech_commands",
                        help="comma-separated words, or a named list: 'speech_commands' (the 35 "
                             "Speech Commands V2 words, the default) or 'common' "
                             f"({len(COMMON_WORDS)} everyday words that are not keywords and do "
                             "not sound like one: extra _unknown_ examples, see kwsnb's "
                             "--extra_unknown_dir)")
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
