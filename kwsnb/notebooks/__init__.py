"""What the notebooks show and call: the steps between their prose (``steps``: settings,
prepare_data, train, test_clips, operating_point), ``plots``, ``widgets`` and the ``microphone``; and the notebooks
themselves: rendered from templates (``render``, ``python -m kwsnb.notebooks``), run over a
parameter grid (``sweep``, ``python -m kwsnb.sweep``) and run on the committed models with their
outputs kept (``showcase``, ``python -m kwsnb.notebooks.showcase``).

A notebook imports ``from kwsnb import notebooks`` and calls ``notebooks.prepare_data(...)`` etc.;
the figures come from ``from kwsnb.notebooks import plots, widgets``.
"""
from kwsnb.notebooks.steps import (FULL, QUICK, QUICK_SYNTHETIC_WORDS, RECIPES, Settings,
                                   operating_point, prepare_data, settings, test_clips, train)

__all__ = ["FULL", "QUICK", "QUICK_SYNTHETIC_WORDS", "RECIPES", "Settings", "operating_point",
           "prepare_data", "settings", "test_clips", "train"]
