"""The paper-figure scripts run by ``landscape figures`` (one module per figure; ``_runs`` holds
what they share). A package so that a plain ``pip install .`` ships them beside ``landscape``."""
