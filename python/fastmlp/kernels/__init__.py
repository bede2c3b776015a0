"""The fast kernels: same names and signatures as fastmlp.reference.

Each function validates its arguments (raising TypeError/ValueError that name the argument),
then runs C++ with the GIL released.
"""
from .dense import dense_backward, dense_forward
from .optimizers import adagrad_step, adam_step, rmsprop_step, sgd_step

__all__ = ["dense_forward", "dense_backward",
           "sgd_step", "adagrad_step", "rmsprop_step", "adam_step"]
