"""What an operator model is, and where models come from: the model classes (``operator.py``), the
functions a model may use (``functions.py``), the registry (``registry.py``), users' model files
(``files.py``), the safe reader (``reader.py``) and the catalogue as text (``catalog.py``).

``from derive.model import Input, OperatorModel, Param, index, size`` is how a model file starts.
"""

from .operator import (
    LAYOUTS,
    Input,
    Layout,
    ModelFactory,
    OperatorModel,
    Param,
    ScalarEntry,
    dim_of,
    entrywise,
    free_sizes,
    index,
    infer_layout,
    one_axis,
    size,
)

__all__ = ["LAYOUTS", "Input", "Layout", "ModelFactory", "OperatorModel", "Param", "ScalarEntry", "dim_of",
           "entrywise", "free_sizes", "index", "infer_layout", "one_axis", "size"]
