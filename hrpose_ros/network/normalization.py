"""The network's input normalisation: RGB in [0, 1], minus the ImageNet mean, over its std.

One definition for everything that feeds or describes the network: the training dataset
normalises with it, training stores it in every checkpoint's ``model_info``, and the
exporter writes it into the bundle metadata that the runtime's preprocessing reads.
"""

from __future__ import annotations

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
