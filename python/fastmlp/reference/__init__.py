"""NumPy reference for every kernel in fastmlp.kernels: the specification, written to be read.

Conventions, stated once: arrays are row-major; a dense layer's weight W has shape (in, out), so
z = x @ W + b; gradients are named d<name>. Functions work in the dtype they are given (float32 to
compare with the kernels, float64 for finite-difference checks).
"""
from .activations import ACTIVATIONS, DERIVATIVES, activate, activate_grad
from .batchnorm import batchnorm_backward, batchnorm_forward
from .dense import dense_backward, dense_forward
from .losses import binary_cross_entropy, mse, softmax_cross_entropy
from .optimizers import adagrad_step, adam_step, rmsprop_step, sgd_step

__all__ = ["ACTIVATIONS", "DERIVATIVES", "activate", "activate_grad",
           "dense_forward", "dense_backward",
           "batchnorm_forward", "batchnorm_backward", "softmax_cross_entropy", "mse", "binary_cross_entropy",
           "sgd_step", "adagrad_step", "rmsprop_step", "adam_step"]
