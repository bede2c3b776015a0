// Placeholder: the optimizers kernels.
