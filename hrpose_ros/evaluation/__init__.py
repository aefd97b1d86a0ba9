"""Evaluation (no torch, no rclpy): the paper's accuracy protocol on annotated BOP images.

``scoring`` pairs detections with ground truth and measures each pair, ``results`` holds
the per-instance and per-object results and their summary, ``runner`` runs an
``Estimator`` over a folder, ``report`` writes the tables and the plot. Used by
``hrpose-eval`` (``training.evaluate``, which adds the torch checkpoint path) and by
``hrpose-demo``, on a deployment machine. Imports the geometry core, the runtime and
``data``; never torch, timm, rclpy or training.
"""
