"""TFLite: a trained Keras model to every .tflite format and back into numbers.

In the order a model goes through them:
    convert     the converter call, batch-1 signatures, calibration inputs, streaming state pairs
    front_end   where the float MFCC front end sits in a converted graph (kept float in every
                quantized format), its constants made smaller
    quantize    one int8 calibration per model, its ranges forced into every int8 format
    flatbuffer  the one toolkit that reads, finds by role, edits and re-packs a converted
                flatbuffer (every rewrite keeps the outputs bit-identical)
    export      every format written to a folder with metadata.json, each checked before it is kept
    runtime     reading and running .tflite files with LiteRT (TFLiteModel, open_stream)
    stack       the TensorFlow releases kwsnb is tested with, and the converter internals it
                checks before use
"""
