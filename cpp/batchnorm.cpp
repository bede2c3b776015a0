// Placeholder: the batchnorm kernels.
