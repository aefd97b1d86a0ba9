"""The network (torch, timm): its definition, its ImageNet weights, its input normalisation
and the checkpoint format it is stored in.

Shared by training (which builds, trains and saves it) and the runtime's torch backend
(which rebuilds it from a checkpoint), so neither reaches into the other. Imports torch,
timm and the geometry core (channel layout); never training, data, evaluation, the
runtime or rclpy.
"""
