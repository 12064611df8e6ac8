"""The seed: kws_streaming's "models with 30k parameters" (Speech Commands V2, 12 labels).

Published figures and the eight training command lines, as data, from
google-research/kws_streaming `experiments/kws_experiments_30k_12_labels.md`. "quant" there is
post-training dynamic-range quantization (int8 weights, float activations). Sizes are TFLite
bytes in KB; latencies were measured on a phone (Pixel 4), so they compare with each other, not
with latencies measured here.

The inception command line lacks a ``\\`` after ``--cnn2_kernel_sizes '3,5,5'``, so its last three
flags (``--cnn_strides '2,2,1'``, ``--dropout 0.0``, ``--bn_scale 0``) never reached the seed's
program. ``SEED_COMMANDS`` keeps them: they are what the command meant to set.
"""
from __future__ import annotations

import shlex

SOURCE = ("google-research/google-research, kws_streaming/experiments/"
          "kws_experiments_30k_12_labels.md")

# model: (params, float accuracy %, float size KB, quant accuracy %, quant size KB, latency ms)
PUBLISHED = {
    "svdf_resnet": dict(params=33_000, float_accuracy=94.6, float_size_kb=145, quant_accuracy=94.6, quant_size_kb=57, latency_ms=1.2),
    "mobilenet": dict(params=35_000, float_accuracy=92.5, float_size_kb=141, quant_accuracy=91.5, quant_size_kb=45, latency_ms=1.1),
    "mobilenet_v2": dict(params=28_000, float_accuracy=95.0, float_size_kb=118, quant_accuracy=94.1, quant_size_kb=43, latency_ms=1.1),
    "inception": dict(params=30_000, float_accuracy=95.9, float_size_kb=130, quant_accuracy=94.9, quant_size_kb=63, latency_ms=1.2),
    "inception_resnet": dict(params=33_000, float_accuracy=95.8, float_size_kb=140, quant_accuracy=94.8, quant_size_kb=60, latency_ms=1.2),
    "svdf": dict(params=32_000, float_accuracy=91.1, float_size_kb=142, quant_accuracy=91.1, quant_size_kb=58, latency_ms=1.2, stream_latency_ms=0.2),
    "tc_resnet": dict(params=31_000, float_accuracy=95.7, float_size_kb=127, quant_accuracy=94.6, quant_size_kb=41, latency_ms=1.1),
    "xception": dict(params=31_000, float_accuracy=94.8, float_size_kb=133, quant_accuracy=94.0, quant_size_kb=51, latency_ms=1.1),
}

# The seed's command lines after `python -m kws_streaming.train.model_train_eval`, verbatim but
# for the line continuations ($DATA_PATH and $MODELS_PATH are filled in by seed_command()).
SEED_COMMANDS = {
    "svdf_resnet": """
--data_url ''
--data_dir $DATA_PATH/
--train_dir $MODELS_PATH/svdf_resnet/
--mel_upper_edge_hertz 7600
--how_many_training_steps 20000,20000,20000,20000
--learning_rate 0.001,0.0005,0.0001,0.00002
--window_size_ms 40.0
--window_stride_ms 20.0
--mel_num_bins 80
--dct_num_features 40
--resample 0.15
--time_shift_ms 100
--feature_type 'mfcc_op'
--fft_magnitude_squared 1
--preprocess 'raw'
--train 1
--lr_schedule 'exp'
svdf_resnet
--block1_memory_size '7'
--block2_memory_size '7'
--block3_memory_size '11,11'
--block1_units1 '32'
--block2_units1 '50'
--block3_units1 '50,128'
--blocks_pool '2,2,1'
--use_batch_norm 1
--bn_scale 1
--activation 'relu'
--svdf_dropout 0.0
--svdf_pad 1
--svdf_use_bias 0
--dropout1 0.0
--units2 '64'
--flatten 0
""",
    "mobilenet": """
--data_url ''
--data_dir $DATA_PATH/
--train_dir $MODELS_PATH/mobilenet/
--mel_upper_edge_hertz 7600
--how_many_training_steps 20000,20000,20000,20000
--learning_rate 0.001,0.0005,0.0001,0.00002
--window_size_ms 40.0
--window_stride_ms 20.0
--mel_num_bins 80
--dct_num_features 40
--resample 0.15
--time_shift_ms 100
--feature_type 'mfcc_op'
--fft_magnitude_squared 1
--preprocess 'raw'
--train 1
--lr_schedule 'exp'
mobilenet
--cnn1_filters 32
--cnn1_kernel_size '(3,1)'
--cnn1_strides '(2,2)'
--ds_kernel_size '(3,1),(3,1),(3,1),(3,1)'
--ds_strides '(2,2),(2,2),(1,1),(1,1)'
--cnn_filters '32,64,128,128'
--dropout 0.0
""",
    "mobilenet_v2": """
--data_url ''
--data_dir $DATA_PATH/
--train_dir $MODELS_PATH/mobilenet_v2/
--mel_upper_edge_hertz 7600
--how_many_training_steps 20000,20000,20000,20000
--learning_rate 0.001,0.0005,0.0001,0.00002
--window_size_ms 40.0
--window_stride_ms 20.0
--mel_num_bins 80
--dct_num_features 30
--resample 0.15
--time_shift_ms 100
--train 1
--feature_type 'mfcc_op'
--fft_magnitude_squared 1
--preprocess 'raw'
mobilenet_v2
--cnn1_filters 32
--cnn1_kernel_size '(3,1)'
--cnn1_strides '(2,2)'
--ds_kernel_size '(3,1),(3,1),(3,1),(3,1)'
--cnn_strides '(1,1),(2,2),(1,1),(1,1)'
--cnn_filters '32,32,64,64'
--cnn_expansions '1.5,1.5,1.5,1.5'
--dropout 0.0
""",
    "inception": """
--data_url ''
--data_dir $DATA_PATH/
--train_dir $MODELS_PATH/inception/
--mel_upper_edge_hertz 7600
--how_many_training_steps 20000,20000,20000,20000
--learning_rate 0.001,0.0005,0.0001,0.00002
--window_size_ms 40.0
--window_stride_ms 20.0
--mel_num_bins 80
--dct_num_features 30
--resample 0.15
--time_shift_ms 100
--train 1
--feature_type 'mfcc_op'
--fft_magnitude_squared 1
--preprocess 'raw'
inception
--cnn1_filters '32'
--cnn1_kernel_sizes '5'
--cnn1_strides '1'
--cnn2_filters1 '16,16,16'
--cnn2_filters2 '32,64,70'
--cnn2_kernel_sizes '3,5,5'
--cnn_strides '2,2,1'
--dropout 0.0
--bn_scale 0
""",
    "inception_resnet": """
--data_url ''
--data_dir $DATA_PATH/
--train_dir $MODELS_PATH/inception_resnet/
--mel_upper_edge_hertz 7600
--how_many_training_steps 20000,20000,20000,20000
--learning_rate 0.001,0.0005,0.0001,0.00002
--window_size_ms 40.0
--window_stride_ms 20.0
--mel_num_bins 80
--dct_num_features 30
--resample 0.15
--time_shift_ms 100
--train 1
--feature_type 'mfcc_op'
--fft_magnitude_squared 1
--preprocess 'raw'
inception_resnet
--cnn1_filters '32'
--cnn1_strides '1'
--cnn1_kernel_sizes '5'
--cnn2_scales '0.2,0.5,1.0'
--cnn2_filters_branch0 '16,16,32'
--cnn2_filters_branch1 '16,16,32'
--cnn2_filters_branch2 '32,32,64'
--cnn2_strides '2,2,1'
--cnn2_kernel_sizes '3,5,5'
--bn_scale 1
--dropout 0.0
""",
    "svdf": """
--data_url ''
--data_dir $DATA_PATH/
--train_dir $MODELS_PATH/svdf/
--mel_upper_edge_hertz 7600
--how_many_training_steps 20000,20000,20000,20000
--learning_rate 0.001,0.0005,0.0001,0.00002
--window_size_ms 40.0
--window_stride_ms 20.0
--mel_num_bins 80
--dct_num_features 40
--resample 0.15
--time_shift_ms 100
--feature_type 'mfcc_op'
--fft_magnitude_squared 1
--preprocess 'raw'
--train 1
--lr_schedule 'exp'
svdf
--svdf_memory_size 4,10,10,10,10,10
--svdf_units1 16,32,32,32,64,128
--svdf_act "'relu','relu','relu','relu','relu','relu'"
--svdf_units2 40,40,64,64,64,-1
--svdf_dropout 0.0,0.0,0.0,0.0,0.0,0.0
--svdf_pad 0
--dropout1 0.0
--units2 ''
--act2 ''
""",
    "tc_resnet": """
--data_url ''
--data_dir $DATA_PATH/
--train_dir $MODELS_PATH/tc_resnet/
--mel_upper_edge_hertz 7600
--how_many_training_steps 20000,20000,20000,20000
--learning_rate 0.001,0.0005,0.0001,0.00002
--window_size_ms 40.0
--window_stride_ms 20.0
--mel_num_bins 80
--dct_num_features 30
--resample 0.15
--time_shift_ms 100
--train 1
--feature_type 'mfcc_op'
--fft_magnitude_squared 1
--preprocess 'raw'
tc_resnet
--kernel_size '(3,1)'
--channels '32, 36, 36, 40'
--debug_2d 0
--pool_size ''
--pool_stride 0
--bn_momentum 0.997
--bn_center 1
--bn_scale 1
--bn_renorm 0
--dropout 0.0
""",
    "xception": """
--data_url ''
--data_dir $DATA_PATH/
--train_dir $MODELS_PATH/xception/
--mel_upper_edge_hertz 7600
--how_many_training_steps 20000,20000,20000,20000
--learning_rate 0.001,0.0005,0.0001,0.00002
--window_size_ms 40.0
--window_stride_ms 20.0
--mel_num_bins 80
--dct_num_features 30
--resample 0.15
--time_shift_ms 100
--train 1
--feature_type 'mfcc_op'
--fft_magnitude_squared 1
--preprocess 'raw'
xception
--cnn1_kernel_size '5'
--cnn1_filters '16'
--stride1 2
--stride2 2
--stride3 1
--stride4 1
--cnn2_kernel_sizes '5,7'
--cnn2_filters '32,40'
--cnn3_kernel_sizes '7'
--cnn3_filters '64'
--cnn4_kernel_sizes '11'
--cnn4_filters '100'
--units2 '64'
--bn_scale 0
--dropout 0.0
""",
}


# Noise levels for data whose noise files are quiet but whose test silence is loud (the lite
# set's six noise files have RMS 0.003-0.006, the test folder's silence a median of 0.02 and a
# 90th percentile of 0.22): noise files are rescaled to RMS 0.1 and mixed into silence examples at
# gain U(0, 1); validation silence is seeded noise, not zeros (as the test's is).
NOISE_FLAGS = ["--background_rms", "0.1", "--silence_volume", "1.0", "--eval_silence_noise", "1"]
# The front end centres the MFCCs and caps coefficient 0's spread: int8 then tracks float
# (docs/sc_lite9_findings.md, finding 1).
NORMALIZE_FLAGS = ["--normalize_features", "1"]
# Training for streaming (docs/sc_lite10_findings.md): a quarter of each batch is windows cut from
# streams of training words (kwsnb.data.stream_windows), 30% unknown-word examples, drawn with
# replacement, and background noise in keywords at gain U(0, 0.3) of noise at RMS 0.1 (up to RMS
# 0.03, louder than the noise of the streaming benchmark's 20 dB recordings).
STREAMING_FLAGS = ["--unknown_with_replacement", "1", "--unknown_percentage", "30",
                   "--stream_window_percentage", "25", "--background_volume", "0.3"]
# The streaming recipe on any Speech Commands-like folder (benchmarks/sc_lite10.py, kwsnb.demo,
# the notebooks' recipe = "sc_lite10"): the seed's command line, then these flags (they win).
STREAMING_RECIPE = [*NOISE_FLAGS, *NORMALIZE_FLAGS, *STREAMING_FLAGS]

# SC-lite-10 (../shared/data/README.md): labels _silence_, _unknown_ and these eight words,
# trained on speech_commands_lite (12,853 clips) and tested on speech_commands_test_lite without on
# and off (7-10 training clips each). Its recipe is each architecture's seed command line followed
# by SC_LITE10_FLAGS and a preset's steps, learning rates and flags (benchmarks/sc_lite10.py,
# docs/results_sc_lite10.md).
SC_LITE10_WORDS = "yes,no,up,down,left,right,stop,go"
SC_LITE10_TEST_EXCLUDE = "on,off"
SC_LITE10_FLAGS = ["--data_url", "", "--wanted_words", SC_LITE10_WORDS,
                   "--eval_step_interval", "500", *NOISE_FLAGS, *NORMALIZE_FLAGS]
# on and off, which streams say often and which the models heard as "up" (most false accepts of
# the first SC-lite-10 models), spoken by offline TTS as _unknown_ examples: 7% of the training
# keyword clips, about 600 (kwsnb.data.tts_unknown; docs/sc_lite10_findings.md, finding 11).
TTS_UNKNOWN_FLAGS = ["--tts_unknown_words", SC_LITE10_TEST_EXCLUDE,
                     "--extra_unknown_percentage", "7"]
SC_LITE10_PRESETS = {
    # The committed models: the streaming recipe and TTS on/off at 8,000 steps.
    "default": {"steps": "6000,2000", "learning_rates": "0.001,0.0002",
                "extra": [*STREAMING_FLAGS, *TTS_UNKNOWN_FLAGS]},
    # The same at 16,000 steps (twice the time; measured on tc_resnet only).
    "long": {"steps": "12000,4000", "learning_rates": "0.001,0.0002",
             "extra": [*STREAMING_FLAGS, *TTS_UNKNOWN_FLAGS]},
    # Clips only, 10% unknown-word examples (the recipe before issue 23): the first probe.
    "baseline": {"steps": "6000,2000", "learning_rates": "0.001,0.0002",
                 "extra": ["--unknown_with_replacement", "1"]},
}


def sc_lite10_recipe(preset: str = "default") -> tuple[str, str, list[str]]:
    """(steps, learning_rates, flags) of an SC-lite-10 preset: SC_LITE10_FLAGS, then its own."""
    if preset not in SC_LITE10_PRESETS:
        raise ValueError(f"unknown SC-lite-10 preset {preset!r}; one of "
                         f"{', '.join(SC_LITE10_PRESETS)}")
    chosen = SC_LITE10_PRESETS[preset]
    return chosen["steps"], chosen["learning_rates"], [*SC_LITE10_FLAGS, *chosen["extra"]]


def seed_command(name: str, data_dir: str, models_dir: str, steps: str | None = None,
                 learning_rates: str | None = None, extra: list[str] | None = None) -> list[str]:
    """The seed's command line for ``name`` as an argv list for ``python -m kwsnb.train``.

    ``steps`` / ``learning_rates`` replace ``--how_many_training_steps`` / ``--learning_rate``
    (e.g. ``"300,300"`` and ``"0.001,0.0005"`` for a quick run); ``extra`` flags go before the
    model name and win over the seed's.
    """
    if name not in SEED_COMMANDS:
        raise ValueError(f"no seed command for {name!r}; known: {', '.join(SEED_COMMANDS)}")
    text = SEED_COMMANDS[name].replace("$DATA_PATH", data_dir.rstrip("/")).replace(
        "$MODELS_PATH", models_dir.rstrip("/"))
    argv = shlex.split(text)
    split = argv.index(name)
    base, model = argv[:split], argv[split:]
    replace = {}
    if steps is not None:
        replace["--how_many_training_steps"] = steps
    if learning_rates is not None:
        replace["--learning_rate"] = learning_rates
    for flag, value in replace.items():  # a sweep's -p gives 0.001 or 300 as numbers
        base[base.index(flag) + 1] = str(value)
    return base + [str(arg) for arg in extra or []] + model
