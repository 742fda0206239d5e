"""Command-line tools, installed as console scripts.

==================  ====================  ==============================================
module              console script        checkout wrapper
==================  ====================  ==============================================
``train``           ``kerasfuse-train``     ``train.py``
``evaluate``        ``kerasfuse-evaluate``  ``evaluate.py``
``predict``         ``kerasfuse-predict``   ``predict.py``
``export``          ``kerasfuse-export``    ``export_tflite.py``
==================  ====================  ==============================================

Each module has ``main(argv=None)`` returning the exit status (0 ok, 2 bad input).
"""
