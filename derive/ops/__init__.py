"""The built-in operators.  Each module registers its models; this import list fixes their order,
which ``derive generate``, ``derive list`` and the handbook follow."""
# ruff: noqa: I001, F401  (imported for registering, in the catalogue's order, not sorted)

from . import arithmetic
from . import elementwise
from . import activations
from . import reduce_mean
from . import softmax
from . import log_softmax
from . import rmsnorm
from . import layernorm
from . import batchnorm
from . import group_norm
from . import matmul
from . import losses
from . import attention
