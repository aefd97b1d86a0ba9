"""Data layer (no torch): BOP reader and writer, renderer, synthetic generator, augmentation.

Everything that makes or reads images and their annotations without a network: the
training dataset builds on it, and so do the deployment tools (``hrpose-play`` and
``hrpose-demo`` read BOP folders with ``data.bop``). Imports numpy, OpenCV and the
geometry core; moderngl, trimesh and scipy only lazily, where a mesh is loaded or a
scene rendered. Never torch, timm or rclpy.
"""
