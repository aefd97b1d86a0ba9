"""Training side (torch, timm, renderer): model, losses, data, training, evaluation, export.

Uses the geometry core for targets, decoding, PnP and metrics; never re-implements them.
"""
