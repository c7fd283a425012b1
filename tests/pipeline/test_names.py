"""Names are the user's (issue 28): an input, a parameter or an intermediate may take a name the
notation or a kernel already uses (``y`` the output, ``dy`` the cotangent, ``dot_x`` a tangent,
``x_hat``, ``np``, ``ctx``, a temporary ``t0``, a builtin ``min``); the derivation renames it
(``derive.calculus.rename``) and the kernels and the document are proved as any other.  One small
model per name and role, rendered for NumPy (and LaTeX for an input), proved before it is returned."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import sympy as sp

import derive
from derive.calculus.rename import renamed, reserved
from derive.model import Input, OperatorModel, Param, index, size
from derive.show import show_text

CLASHING = ("y", "dy", "dot_x", "x_hat", "t0", "ctx", "np", "total", "min", "S", "e", "n")


def _model(name: str, role: str) -> OperatorModel:
    """y[i] = x[i] * v[i] + exp(c * v[i]) with ``name`` for v (an input), c (a parameter) or for the
    intermediate x*v; the size is m when the name is n."""
    n = size("m" if name == "n" else "n")
    i = index("i", n)
    x = Input("x", (n,))
    v = Input(name if role == "input" else "v", (n,))
    c = sp.Symbol(name if role == "parameter" else "c", positive=True)
    product = x[i] * v[i]
    return OperatorModel(name="clash", summary="x * v + exp(c * v)", category="test", inputs=(x, v),
                         params=(Param(str(c), 0.5, c, "slope"),), output_indices=(i,),
                         output=product + sp.exp(c * v[i]),
                         where=(((name, product),) if role == "intermediate" else ()))


@pytest.mark.parametrize("role", ["input", "parameter", "intermediate"])
@pytest.mark.parametrize("name", CLASHING)
def test_a_clashing_name_generates_proved_files(name, role, tmp_path):
    files = derive.render(_model(name, role), ["numpy", "latex"] if role == "input" else ["numpy"])
    path = tmp_path / "clash.py"
    path.write_text(files["numpy/clash.py"], encoding="utf-8")
    kernel = derive.load_kernel(path)
    (keyword,) = inspect.signature(kernel.forward).parameters.keys() & set(kernel.PARAMS)  # renamed if it clashed
    assert keyword == ("c" if role != "parameter" else renamed(_model(name, role)).get(name, name))
    if role == "parameter":
        assert (keyword != name) == reserved(name)
    x, v = np.array([0.5, -1.0, 2.0]), np.array([1.5, 0.25, -0.75])
    expected = x * v + np.exp(0.5 * v)
    np.testing.assert_allclose(kernel.forward(x, v, **{keyword: 0.5}), expected, rtol=1e-13)
    dx, dv = kernel.vjp(np.ones(3), x, v, **{keyword: 0.5})
    np.testing.assert_allclose(dx, v, rtol=1e-13)
    np.testing.assert_allclose(dv, x + 0.5 * np.exp(0.5 * v), rtol=1e-13)


def test_show_names_the_input_y_apart_from_the_output():
    """x[i]*y[i]: the gradient by the input y and the output's cotangent are two names."""
    n = size("n")
    i = index("i", n)
    x, y = Input("x", (n,)), Input("y", (n,))
    text = show_text(OperatorModel(name="xy", summary="x*y", category="test", inputs=(x, y),
                                   output_indices=(i,), output=x[i] * y[i]), ascii_only=True)
    assert "y is written y1" in text
    vjp = next(line for line in text.split("with respect to y1")[1].splitlines() if "vjp" in line)
    gradient, value = vjp.split("=")
    assert "dy1[k]" in gradient and "y1" not in value and "x[k]" in value, text
