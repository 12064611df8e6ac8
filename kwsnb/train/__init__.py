"""Training with kws_streaming's recipe and command lines.

Any of the seed's eight command lines runs with only the module name replaced::

    python -m kwsnb.train --data_url '' --data_dir DATA --train_dir RUN \\
        --how_many_training_steps 20000,20000,20000,20000 \\
        --learning_rate 0.001,0.0005,0.0001,0.00002 ... mobilenet --cnn1_filters 32 ...

``flags`` parses the seed's command lines; ``loop`` trains; ``distribute`` picks the devices
(``--distribute``). The command line then exports and
evaluates every format: that chaining is ``kwsnb.pipeline`` (run by ``__main__``), above both
this stage and ``kwsnb.evaluate``, which itself loads trained models from here.
"""
from kwsnb.train.flags import (BEST_WEIGHTS, FLAGS_FILE, LAST_WEIGHTS, OFFICIAL_V2_URL,
                               TRAINING_LOG, TrainError, evaluation_flags, expected_labels,
                               load_flags, parse_command_line, parse_flag_value,
                               parse_model_flags, resolved_model_flags)
from kwsnb.train import state
from kwsnb.train.distribute import is_chief
from kwsnb.train.loop import (ADAPTATION_CLIPS, Stages, adapt_front_end, build_model,
                              finished_run,
                              learning_rate_schedule, load_trained_model, train,
                              validation_interval)

__all__ = [
    "ADAPTATION_CLIPS", "BEST_WEIGHTS", "FLAGS_FILE", "LAST_WEIGHTS", "OFFICIAL_V2_URL",
    "TRAINING_LOG", "Stages", "TrainError", "adapt_front_end", "build_model", "evaluation_flags",
    "expected_labels", "finished_run", "is_chief", "learning_rate_schedule", "load_flags", "load_trained_model",
    "parse_command_line", "parse_flag_value", "parse_model_flags", "resolved_model_flags",
    "state", "train", "validation_interval",
]
