"""The data flow, one step per module: corpus/audio -> features -> dataset -> model -> report.

A module here imports only modules of earlier steps (tests/test_layers.py holds the order).
"""
