"""Deployment runtime: camera image -> poses without the training stack.

Preprocessing, inference backends (TensorRT, ONNX Runtime, PyTorch), decoding and PnP
behind one ``Estimator``. Nothing here imports rclpy, and torch is imported only by
the optional torch backend, lazily. Import the submodules you need, e.g.
``from hrpose_ros.runtime.estimator import Estimator``; this package file stays light.
"""
