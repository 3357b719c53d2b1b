"""What an export is, below both the exporters and the runners: the format table
(``formats``), where each artifact lives (``layout``), ``manifest.json`` and the
``Target`` a runner is opened on. Nothing here imports TensorFlow at import time.
"""
