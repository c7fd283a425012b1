"""The built-in operators.  Each module registers its model; this import list fixes their order."""

from . import layernorm, matmul, rmsnorm, softmax  # noqa: F401
