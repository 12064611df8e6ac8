"""Microcontroller export: features-in int8 models that run in TensorFlow Lite Micro (TFLM).

Two models per trained architecture, both the body alone (the MFCC front end runs on the device,
outside the model), int8 in and int8 out:

``features_int8``         ``kwsnb.tflite.export``'s ``tflite_features_int8``: a second of int8 MFCCs
                          ``[1, frames, dct]`` in, int8 logits ``[1, labels]`` out.
``stream_features_int8``  the same body in external-state streaming mode: one int8 MFCC frame
                          ``[1, 1, dct]`` per call (every 20 ms) plus the body's ring buffers as
                          int8 state inputs; int8 logits and the new states out. The front end's
                          audio ring buffer is the device's business, so it is not a state here.

**Why the models used to fail in TFLM** ("Didn't find op for builtin opcode 'REDUCE_PROD'"):
``keras.Model.export`` always relaxes the batch dimension to None. With an unknown batch, every
Dense applied to ``[batch, time, channels]`` (a ``tensordot``: SHAPE, GATHER, REDUCE_PROD, PACK,
CONCATENATION feeding two RESHAPEs) and every Flatten (SHAPE, STRIDED_SLICE, PACK feeding a
RESHAPE) computes its shape at run time, and TFLM has no REDUCE_PROD (nor SHAPE-driven
reshapes to plan an arena with). tc_resnet has neither (Conv1D only, Dense after the pooling),
so it was the one model that loaded. The fix exports with a batch-1 signature
(``kwsnb.tflite.export.batch_one_signature``): every shape is a constant, the graph keeps only RESHAPE,
FULLY_CONNECTED, the convolutions, ...; weights and numbers are unchanged.

Functions:

``convert_stream_features_int8(model, audio)``  the streaming features-in int8 model (bytes)
``stream_features_model(model)``                its Keras graph (float), for inspection
``tflm_check(model)``                           runs in TFLM?, arena bytes, error message
``TFLMRunner``                                  runs a model by signature names (raw int8 I/O)
``write_c_array`` / ``read_c_array``            C source/header pair of a model, and back
``python -m kwsnb.micro TRAIN_DIR --out DIR``   both models as .tflite, .cc/.h, metadata, README

TFLM's Python interpreter comes from the ``tflite-micro`` package (``pip install tflite-micro``;
module ``tflite_micro.python.tflite_micro.runtime``), in the ``test`` extra.
"""
from kwsnb.streaming import FEATURES_INPUT
from kwsnb.micro.compare import compare, features_int8, run_non_stream, run_stream
from kwsnb.micro.convert import (convert_stream_features_int8, stream_calibration_inputs,
                                 stream_features_model, stream_state_pairs)
from kwsnb.micro.package import (c_identifier, export_micro, load_train_dir, micro_metadata,
                                 read_c_array, representative_audio, summary_markdown,
                                 write_c_array)
from kwsnb.micro.runtime import (MICRO_FORMATS, NON_STREAM, STREAM, MicroError,
                                 TFLMRunner, arena_works, minimum_arena, tflm_available,
                                 tflm_check)

__all__ = ["FEATURES_INPUT", "MICRO_FORMATS", "NON_STREAM", "STREAM", "MicroError", "TFLMRunner",
           "arena_works", "c_identifier", "compare", "convert_stream_features_int8",
           "export_micro", "features_int8", "load_train_dir", "micro_metadata", "minimum_arena",
           "read_c_array", "representative_audio", "run_non_stream", "run_stream",
           "stream_calibration_inputs", "stream_features_model", "stream_state_pairs",
           "summary_markdown", "tflm_available", "tflm_check", "write_c_array"]
