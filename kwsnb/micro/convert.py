"""The streaming features-in int8 model: the body of a streaming model, one int8 MFCC frame per
call, its ring buffers as int8 state inputs and outputs, calibrated like every other int8 format."""
from __future__ import annotations

import numpy as np

from kwsnb import streaming
from kwsnb.micro.runtime import MicroError
from kwsnb.streaming import FEATURES_INPUT
from kwsnb.tflite import convert, runtime, stack

# ---------------------------------------------------------------------------------------------
# The streaming features-in model
# ---------------------------------------------------------------------------------------------

def stream_features_model(model, stream_model=None):
    """The body of ``model`` in external-state streaming mode, front end left out (Keras, float).

    Inputs ``[features [1, 1, dct], <layer>_state, ...]`` (every state of the external-state
    streaming model except the front end's audio ring buffer); outputs a dict ``{"logits": ...,
    "<layer>_state": new state, ...}``. ``stream_model``: the external-state model if already
    built (``kwsnb.streaming.to_stream_external(model)``).
    """
    import keras

    from kwsnb.layers import FRONT_END, LOGITS, STATE_SUFFIX

    if stream_model is None:
        stream_model = streaming.to_stream_external(model)
    front_end = streaming.front_end_layer(stream_model)
    output = front_end.output
    frames = output[0] if isinstance(output, (list, tuple)) else output
    audio_state = front_end.name + STATE_SUFFIX if front_end.name else FRONT_END + STATE_SUFFIX
    states = [x for x in stream_model.inputs[1:] if convert.tensor_name(x) != audio_state]
    structure = stream_model.output
    if not isinstance(structure, dict) or LOGITS not in structure:
        raise MicroError(f"{stream_model.name!r} is not a kwsnb external-state streaming model "
                         "(expected a dict output with 'logits' and the new states)")
    outputs = {LOGITS: structure[LOGITS]}
    outputs.update({convert.tensor_name(x): structure[convert.tensor_name(x)] for x in states})
    try:
        return keras.Model([frames, *states], outputs, name=f"{model.name}_stream_body")
    except (ValueError, AttributeError) as error:
        raise MicroError(f"cannot cut the streaming model {stream_model.name!r} at its front end "
                         f"({error})") from None


def _stream_signature(body) -> list:
    return convert.batch_one_signature(
        body, {convert.tensor_name(body.inputs[0]): FEATURES_INPUT})


def stream_state_pairs(content: bytes) -> list[str]:
    """State names of a streaming features-in model: each is an input and an output."""
    io = runtime.describe_io(content)
    return [name for name in io["inputs"] if name != FEATURES_INPUT and name in io["outputs"]]


def stream_calibration_inputs(body, features: np.ndarray) -> list[dict]:
    """Runs the float streaming body (``stream_features_model``) over every frame of each
    clip's features ([clips, frames, dct]; states zeroed per clip) and returns the input dicts
    it saw, keyed by the converted model's input names (calibration data)."""
    import tensorflow as tf

    names = [convert.tensor_name(x) for x in body.inputs[1:]]
    call = tf.function(lambda inputs: body(inputs, training=False))
    samples = []
    for clip in np.asarray(features, np.float32):
        states = [np.zeros(x.shape, np.float32) for x in body.inputs[1:]]
        for frame in clip:
            frame = frame[np.newaxis, np.newaxis]
            samples.append({FEATURES_INPUT: frame, **dict(zip(names, states))})
            outputs = call([tf.constant(frame), *map(tf.constant, states)])
            states = [outputs[name].numpy() for name in names]
    return samples


def convert_stream_features_int8(model, representative_audio: np.ndarray,
                                 clips: int | None = convert.REPRESENTATIVE_CLIPS,
                                 stream_model=None) -> bytes:
    """Streaming features-in int8 model (external state) for microcontrollers.

    Full int8, as ``tflite_features_int8``: int8 MFCC frame, int8 states and int8 logits.
    Calibrated on every frame of ``clips`` of ``representative_audio`` (training clips; the
    same ``kwsnb.tflite.convert.representative_subset`` the non-stream export uses, so the input
    quantization matches), with the states the float streaming body produces on them.
    Batch-1 signature: static shapes, so TFLM runs it.
    """
    import tensorflow as tf

    audio = runtime.as_audio(representative_audio)
    if clips is not None:
        audio = convert.representative_subset(audio, clips)
    front_end, _ = streaming.split_front_end(model)
    features = convert.predict_batches(front_end, audio)
    body = stream_features_model(model, stream_model)
    signature = _stream_signature(body)
    samples = stream_calibration_inputs(body, features)

    def representative():
        yield from samples

    def configure(converter):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        # Per-tensor weights, as every kwsnb int8 format (fewer quantization tables).
        stack.set_private_option(converter, "_experimental_disable_per_channel",
                                   not convert.INT8_PER_CHANNEL)

    content = convert.convert_model(body, "streaming features-in int8 model", configure,
                                    input_signature=signature)
    # Firmware and the metadata address tensors by signature name and position: the tensor
    # names, the converter's metadata and unused tensors are dead weight on a microcontroller.
    return convert.compact_flatbuffer(convert.strip_tensor_names(content, None))


