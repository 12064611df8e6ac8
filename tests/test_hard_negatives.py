"""benchmarks/hard_negatives.py: which false accepts become hard negatives (by hand), and the
whole mining run on the committed tc_resnet over training speakers' words."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import hard_negatives  # noqa: E402
from kwsnb.evaluate.detect import score_posteriors  # noqa: E402

LABELS = ["_silence_", "_unknown_", "yes", "no"]
REPO = Path(__file__).resolve().parents[1]


def test_false_accepts_on_non_keywords_and_noise_become_one_second_clips():
    rate = 100  # 100 samples per second keeps the arithmetic readable
    audio = np.arange(10 * rate, dtype=np.float32)
    events = [(1.0, 1.5, "yes"), (3.0, 3.5, "_unknown_"), (5.0, 5.5, "no")]
    times = np.arange(1, 501) * 0.02
    posteriors = np.zeros((len(times), 4), np.float32)
    posteriors[:, 0] = 1.0
    for fire_s, label in ((0.3, 3), (1.4, 2), (3.4, 2), (5.4, 2), (7.5, 3)):
        # no on noise with under 1 s before it (not kept), yes on yes (a hit), yes on an unknown
        # word, yes on "no" (a confusion), no on noise
        packet = int(round(fire_s / 0.02)) - 1
        posteriors[packet] = 0.0
        posteriors[packet, label] = 1.0
    result = score_posteriors(times, posteriors, LABELS, events, 10.0, threshold=0.9)
    assert result.hits == 1 and result.false_accepts == 4
    clips, confusions = hard_negatives.mine(result, audio, sample_rate=rate)
    assert confusions == 1
    assert clips.shape == (2, rate)
    np.testing.assert_array_equal(clips[0], audio[240:340])  # the second ending at 3.4 s
    np.testing.assert_array_equal(clips[1], audio[650:750])  # and at 7.5 s


@pytest.mark.real_data
def test_mining_the_committed_tc_resnet(real_train_dir, tmp_path, capsys):
    train_dir = REPO / "models" / "tc_resnet"
    out = tmp_path / "mined"
    argv = ["--train_dir", str(train_dir), "--out", str(out), "--minutes", "10",
            "--data_root", str(real_train_dir.parent)]
    assert hard_negatives.main([*argv, "--tts_words", "on,off", "--tts_clips", "40"]) == 0
    summary = json.loads((out / "hard_negatives.json").read_text())
    files = sorted((out / "hard_negative").glob("*.wav"))
    assert len(files) == summary["hard_negatives"]
    # Measured: 25 hard negatives and 10 keyword confusions in these 10 minutes at 0.3.
    assert 15 <= summary["hard_negatives"] <= 40 and 5 <= summary["keyword_confusions"] <= 20
    assert summary["false_accepts_per_hour_at_mining_threshold"] > \
        summary["at_operating_point"]["false_accepts_per_hour"]
    for path in files[:5]:
        audio, rate = soundfile.read(path)
        assert rate == 16000 and audio.shape == (16000,) and np.abs(audio).max() > 0
    assert len(list((out / "on").glob("*.wav")) + list((out / "off").glob("*.wav"))) == 40
    assert f"--extra_unknown_dir {out}" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="is not empty"):  # never mixed with a second run
        hard_negatives.main(argv)
    with pytest.raises(SystemExit, match="between 0 and the operating point"):
        hard_negatives.main([*argv, "--out", str(tmp_path / "other"), "--threshold", "0.999"])
