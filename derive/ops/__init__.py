"""The built-in operators.  Each module registers its models; this import list fixes their order."""

from . import arithmetic, elementwise, activations, reduce_mean, softmax, log_softmax, rmsnorm, layernorm, batchnorm, group_norm, matmul, losses, attention
