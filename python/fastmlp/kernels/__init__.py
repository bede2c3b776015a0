"""The fast kernels: same names and signatures as fastmlp.reference.

Each function validates its arguments (raising TypeError/ValueError that name the argument),
then runs C++ with the GIL released.
"""
from .dense import dense_backward, dense_forward

__all__ = ["dense_forward", "dense_backward"]
