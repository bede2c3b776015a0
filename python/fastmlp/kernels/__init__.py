"""The fast kernels: same names and signatures as fastmlp.reference.

Each function validates its arguments (raising TypeError/ValueError that name the argument),
then runs C++ with the GIL released.
"""
from .batchnorm import batchnorm_backward, batchnorm_forward
from .dense import dense_backward, dense_forward
from .losses import binary_cross_entropy, mse, softmax_cross_entropy
from .optimizers import adagrad_step, adam_step, rmsprop_step, sgd_step

__all__ = ["dense_forward", "dense_backward",
           "batchnorm_forward", "batchnorm_backward", "softmax_cross_entropy", "mse", "binary_cross_entropy",
           "sgd_step", "adagrad_step", "rmsprop_step", "adam_step"]
