"""Training side (torch, timm): dataset, losses, training, checkpoint saving, export, hrpose-eval.

Builds on every torch-free layer (geometry core, ``data``, ``evaluation``, ``runtime``) and
on ``network``; never re-implements their targets, decoding, PnP or metrics. Nothing
below it imports training.
"""
