"""Audio to numbers: decoding, the mel front end, encoders and their training.

Nothing here knows about stores or indexes, and nothing here imports TensorFlow at import time.
"""
