"""Streaming: a Keras model in another mode, and the one runner that feeds a streaming model
packet by packet (Keras, LiteRT or TFLite Micro underneath)::

    model = kwsnb.models.build("tc_resnet")            # train it, or load its weights
    stream = to_stream_external(model)                 # or to_stream_internal / to_non_stream
    runner = StreamRunner(stream)                      # or a converted model: kwsnb.tflite.open_stream
    logits = runner.run(audio)                         # one row per 320-sample packet

``modes``: conversion between modes and the front end split off; ``runner``: StreamRunner and the
one rule for feeding (int8) states back. Code outside this package imports from here.
"""
from kwsnb.streaming.modes import (convert, copy_weights, exact_on_last_second, front_end_layer,
                                   mfcc_of, split_front_end, to_non_stream, to_stream_external,
                                   to_stream_internal)
from kwsnb.streaming.runner import (FEATURES_INPUT, StreamRunner, dequantize, feed_back, quantize,
                                    quantization)

__all__ = ["FEATURES_INPUT", "StreamRunner", "convert", "copy_weights", "dequantize",
           "exact_on_last_second", "feed_back", "front_end_layer", "mfcc_of", "quantization",
           "quantize", "split_front_end", "to_non_stream", "to_stream_external",
           "to_stream_internal"]
