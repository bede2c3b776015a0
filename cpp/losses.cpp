// Placeholder: the losses kernels.
