"""The whole platform end to end on the embedded stack (``python -m demo``, ``make demo``)."""
