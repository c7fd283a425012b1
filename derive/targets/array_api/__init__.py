"""The Array API target: ``generated/array_api/<op>.py``, the NumPy kernel's contract written against
the namespace of its inputs (``array_api_compat.array_namespace``), for NumPy, PyTorch, JAX, CuPy,
Dask and any other library of the standard.

The view is the shared kernel core's (``derive/targets/kernel/``) against the namespace ``xp``,
printed by ``ArrayAPIPrinter`` with the schedule's in-place lowering off (JAX arrays are immutable);
the template ``templates/array_api/kernel.py.jinja`` lays it out with the shared functions and
layouts (``templates/kernel/``) and a runtime of Array API calls only.  Before
it is written, each kernel passes the NumPy kernel's proof, run with NumPy arrays and, where
array-api-strict is installed, with its arrays (which refuse anything outside the standard).
"""

from __future__ import annotations

import types

import numpy as np

from ...calculus.pipeline import Derivation
from ...model import OperatorModel
from ..base import Target
from ..kernel import ARRAY_API, KernelView, build_view, header
from .printer import ArrayAPIPrinter


def build(derivation: Derivation) -> KernelView:
    return build_view(derivation, ArrayAPIPrinter, ARRAY_API)


def _prove_kernel(model: OperatorModel, text: str, seed: int) -> None:
    from ...proof.kernel import load_text, prove_runs  # NumPy starts threads: imported when a proof runs

    module = load_text(model, text)
    runs: dict[str, object] = {"NumPy arrays": module}
    try:
        import array_api_strict
    except ImportError:  # not a dependency of derive (the test extra has it)
        pass
    else:
        runs["array_api_strict arrays"] = through(module, array_api_strict)
    prove_runs(model, runs, seed)


def through(module: types.ModuleType, xp: types.ModuleType) -> types.SimpleNamespace:
    """``module``'s functions called with the NumPy arguments as arrays of ``xp``, returning NumPy arrays."""
    def wrap(value):
        if isinstance(value, dict):  # residuals
            return {name: wrap(v) for name, v in value.items()}
        return value if value is None or type(value) in (bool, int, float) else xp.asarray(value)

    def back(value):
        if isinstance(value, tuple):
            return tuple(back(v) for v in value)
        if isinstance(value, dict):
            return {name: back(v) for name, v in value.items()}
        return None if value is None else np.asarray(value)

    def wrapped(params):
        return {name: wrap(v) if name == "residuals" else v for name, v in params.items()}

    return types.SimpleNamespace(
        RESIDUALS=getattr(module, "RESIDUALS", None),
        forward=lambda *arrays, **params: back(module.forward(*map(wrap, arrays), **params)),
        vjp=lambda dy, *arrays, **params: back(module.vjp(wrap(dy), *map(wrap, arrays), **wrapped(params))),
        jvp=lambda tangents, *arrays, **params: back(
            module.jvp(tuple(map(wrap, tangents)), *map(wrap, arrays), **wrapped(params))),
        vjp_jvp=lambda dy, tangents, *arrays, **params: back(
            module.vjp_jvp(wrap(dy), tuple(map(wrap, tangents)), *map(wrap, arrays), **wrapped(params))),
    )


TARGET = Target("array_api", "array_api", "array_api/kernel.py.jinja", ".py", build, header,
                proofs={".py": _prove_kernel})
