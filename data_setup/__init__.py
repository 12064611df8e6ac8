"""Data preparation for kwsnb.

``python -m data_setup.speech_commands`` (the real data set) and ``python -m data_setup.synthetic``
(offline text-to-speech).
"""
