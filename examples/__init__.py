"""The paper's two applications on our runtime (Wang et al., NSDI 2021, Fig. 3).

- :mod:`examples.serving`: model serving, a Router actor batching
  preprocessed images by reference to Model actors (Fig. 3a);
- :mod:`examples.video`: online video stabilisation with a stateful decoder
  actor and per-frame Flow, CumSum and Smooth tasks (Fig. 3b).

Each runs with one command (``python examples/serving.py``,
``python examples/video.py``) on an embedded cluster, and is what the
``serving`` and ``video`` rows of ``ownership bench`` measure.
"""
