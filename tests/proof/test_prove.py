"""The proof before writing: kernels are executed against the oracle, and a wrong one is refused.

The cosine-similarity model is the regression for the in-place lowering that wrote two live
temporaries into one buffer (its gradient for ``b`` came out exactly 0).  The other tests break a
correct kernel or document on purpose and require the proof to say where: a kernel's text edited
as a developer could get it wrong, or a correct kernel wrapped so that one call misbehaves (``wrt``).
The numba target's chunking and the tolerance have tests of their own (test_prove_numba.py,
test_prove_tolerance.py).
"""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
import sympy as sp
from helpers import finite_differences
from helpers.kernels import load_kernel

from derive import api
from derive.calculus.pipeline import derive
from derive.cli import main
from derive.model import registry
from derive.pipeline import render as rendering
from derive.pipeline.render import prove_files
from derive.proof.kernel import ProofError, prove_kernel, prove_module
from derive.proof.srepr import load_srepr
from derive.proof.twin import prove_twin
from derive.targets.render import TARGETS, render

COSINE = '''"""Cosine similarity over the last axis, written smoothly."""

import sympy as sp

from derive.model import Input, OperatorModel, Param, index, size
from derive.registry import register


@register
def cosine_similarity() -> OperatorModel:
    n = size("n")
    j = index("j", n)
    a, b = Input("a", (n,)), Input("b", (n,))
    eps = sp.Symbol("epsilon", positive=True)
    dot = sp.Sum(a[j] * b[j], (j, 0, n - 1))
    norm_a = sp.sqrt(sp.Sum(a[j] ** 2, (j, 0, n - 1)) + eps)
    norm_b = sp.sqrt(sp.Sum(b[j] ** 2, (j, 0, n - 1)) + eps)
    return OperatorModel(name="cosine_similarity", summary="a.b / (|a| |b|) over the last axis",
                         category="similarity", inputs=(a, b),
                         params=(Param("eps", 1e-8, eps, "added inside each root"),),
                         output_indices=(), output=dot / (norm_a * norm_b))
'''


@pytest.fixture
def cosine(tmp_path):
    path = tmp_path / "cosine_similarity.py"
    path.write_text(COSINE, encoding="utf-8")
    return path


def test_cosine_similarity_kernel_matches_finite_differences(cosine, tmp_path):
    api.write(api.load(cosine), tmp_path / "out")
    kernel = api.load_kernel(tmp_path / "out" / "numpy" / "cosine_similarity.py")
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    cotangent = rng.standard_normal(4)
    grads = kernel.vjp(cotangent, a, b)
    for position in (0, 1):
        expected = finite_differences.vjp(kernel.forward, cotangent, [a, b], position)
        assert np.abs(expected).max() > 0.01
        np.testing.assert_allclose(grads[position], expected, rtol=1e-6, atol=1e-8)
    tangents = rng.standard_normal(a.shape), rng.standard_normal(b.shape)
    second = kernel.vjp_jvp(cotangent, tangents, a, b)  # a user model's kernel has it too
    step = 1e-6
    plus = kernel.vjp(cotangent, a + step * tangents[0], b + step * tangents[1])
    minus = kernel.vjp(cotangent, a - step * tangents[0], b - step * tangents[1])
    for position in (0, 1):
        np.testing.assert_allclose(second[position], (plus[position] - minus[position]) / (2 * step),
                                   rtol=1e-5, atol=1e-7)


def _files(model):
    return render(derive(model))


def _kernel_text(model) -> str:
    """The model's NumPy kernel as rendered now (the NumPy target only: the documents, much the
    larger part of a render, are not needed to break a kernel)."""
    (numpy,) = [target for target in TARGETS if target.name == "numpy"]
    return render(derive(model), (numpy,))[f"numpy/{model.name}.py"]


def _broken(text: str, old: str, new: str) -> str:
    assert old in text, f"the kernel no longer contains {old!r}; pick another mutation"
    return text.replace(old, new, 1)


def test_the_buffer_reuse_bug_is_refused(cosine):
    """A buffer reused while still held (as an old lowering did): b's gradient computed into the
    array that holds a's, already returned."""
    model = api.load(cosine)
    text = _kernel_text(model)
    assert "    t6 = t4*b\n" in text and "    t7 = t4*a\n" in text
    broken = _broken(text, "    t7 = t4*a\n", "    t7 = np.multiply(t4, a, out=t6)\n")
    with pytest.raises(ProofError, match=r"cosine_similarity.*gradient of 'a'.*differs from the oracle"):
        prove_kernel(model, broken)


@pytest.mark.parametrize("name,old,new,what", [
    ("rmsnorm", "grads['x'] = _gradient(", "grads['x'] = -_gradient(", "gradient of 'x'"),
    ("softmax", "return np.moveaxis(value, state[0], -1) if _CORE_AXES[name] else value",
     "return value", "jvp"),  # a jvp that no longer moves `axis`
    ("mul", "value = value.sum(axis=squeezed, keepdims=True)", "pass", "vjp"),  # no sum over size-1 axes
    ("layernorm", "1/np.sqrt(eps + t0*t3)", "1/(np.sqrt(t0*t3) + eps)", "forward"),  # a misplaced eps
    ("rmsnorm", "grads['gamma'] = terms.gradient(", "grads['gamma'] = -terms.gradient(", "vjp_jvp along x"),
    # a dropped term: layernorm's x-entry along gamma's tangent
    ("layernorm", "terms.add('x', t11, owned=True)\n        if wanted[0] and dot_gamma is not None:",
     "terms.add('x', t11, owned=True)\n        if False:", "vjp_jvp along x, gamma, beta, entry of 'x'"),
    ("softmax", "terms.gradient('x', (0,), x)", "terms.gradient('x', (0,), x) * 0", "vjp_jvp"),
    # keepdims' cotangent squeezed on every size-1 axis: a size-1 batch axis beside the reduced one
    ("reduce_mean", "return np.squeeze(value, axis=axis)", "return np.squeeze(value)", "vjp"),
    # the residuals: a vjp that misreads them, a forward that saves a wrong statistic or output
    ("layernorm", "        mu, sigma = saved\n", "        mu, sigma = saved\n        sigma = 2*sigma\n",
     "vjp with residuals"),
    ("layernorm", "saved_mu = _statistic(t1,", "saved_mu = _statistic(t1 + 1e-3,", "vjp with residuals"),
    ("softmax", "return result_, {'y': result_}", "return result_, {'y': 1.5*result_}", "vjp with residuals"),
    ("rmsnorm", "_saved(residuals, ctx)\n    out = _gradient_buffers(out, given, ctx)\n    if saved is not None:\n"
     "        r, = saved\n", "_saved(residuals, ctx)\n    out = _gradient_buffers(out, given, ctx)\n"
     "    if saved is not None:\n        r, = saved\n        r = 1.01*r\n", "vjp_jvp with residuals"),
])
def test_the_proof_catches_a_broken_kernel(name, old, new, what):
    model = registry.get(name)
    text = _kernel_text(model)
    with pytest.raises(ProofError) as caught:
        prove_kernel(model, _broken(text, old, new))
    message = str(caught.value)
    assert f"operator {name!r}" in message and what in message and "sizes" in message


def _layernorm_with(**functions) -> types.SimpleNamespace:
    """The generated NumPy layernorm kernel with some of its functions replaced."""
    kernel = load_kernel("layernorm")
    return types.SimpleNamespace(**{name: functions.get(name, getattr(kernel, name))
                                    for name in ("forward", "vjp", "jvp", "vjp_jvp")})


def test_the_proof_holds_the_kernels_to_the_callers_buffers():
    """out=: a forward that ignores the caller's buffer (returns a new array) and a vjp that leaves an
    entry of a gradient's buffer unwritten (NaN, as the proof fills them) are both refused."""
    kernel = load_kernel("layernorm")

    def ignoring(*arrays, out=None, **params):
        return kernel.forward(*arrays, **params)

    with pytest.raises(ProofError, match="forward into out= returns a new array, not the caller's buffer"):
        prove_module(registry.get("layernorm"), _layernorm_with(forward=ignoring))

    def partly(cotangent, *arrays, out=None, **params):
        got = kernel.vjp(cotangent, *arrays, out=out, **params)
        if out is not None and out[1] is not None:
            out[1][..., -1] = np.nan  # the last entry of gamma's gradient left as the caller gave it
        return got

    with pytest.raises(ProofError, match="vjp into out=, gradient of 'gamma' differs from the oracle"):
        prove_module(registry.get("layernorm"), _layernorm_with(vjp=partly))


def test_the_proof_asks_for_every_subset_of_the_gradients():
    """A vjp_jvp that drops the cross term (x, gamma) when gamma's gradient is not wanted (its flag
    asked for the tangent's input): right whenever wrt is not passed, so only a proof that passes
    every subset as ``wrt`` sees it."""
    kernel = load_kernel("layernorm")

    def dropped(cotangent, tangents, *arrays, wrt=None, **params):
        got = list(kernel.vjp_jvp(cotangent, tangents, *arrays, wrt=wrt, **params))
        if wrt is not None and "gamma" not in wrt and got[0] is not None:
            got[0] = kernel.vjp_jvp(cotangent, (tangents[0], None, tangents[2]), *arrays, wrt=wrt, **params)[0]
        return tuple(got)

    with pytest.raises(ProofError, match=r"vjp_jvp along x, gamma, beta with wrt=\('x',\), entry of 'x' differs"):
        prove_module(registry.get("layernorm"), _layernorm_with(vjp_jvp=dropped))


def test_a_gradient_outside_wrt_is_refused():
    """A vjp that computes every gradient whatever ``wrt`` names."""
    kernel = load_kernel("layernorm")

    def everything(cotangent, *arrays, wrt=None, **params):
        return kernel.vjp(cotangent, *arrays, **params)

    with pytest.raises(ProofError, match=r"vjp with wrt=\(\) returns a gradient for 'x', which is not in wrt"):
        prove_module(registry.get("layernorm"), _layernorm_with(vjp=everything))


def test_a_broken_latex_equation_is_refused():
    model = registry.get("rmsnorm")
    files = _files(model)
    twin = json.loads(files["latex/rmsnorm.json"])
    equation = next(e for e in twin["equations"] if e["kind"] == "vjp" and e["input"] == "gamma")
    equation["rhs"] = sp.srepr(2 * load_srepr(equation["rhs"]))
    prove_twin(model, files["latex/rmsnorm.json"])  # the document as rendered passes
    with pytest.raises(ProofError, match=equation["label"]):
        prove_twin(model, json.dumps(twin))


def test_generate_refuses_a_kernel_that_fails_its_proof(cosine, tmp_path, monkeypatch, capsys):

    def broken_render(derivation, *targets):
        files = render(derivation, *targets)
        name = f"numpy/{derivation.model.name}.py"
        files[name] = files[name].replace("grads['b'] = _gradient(", "grads['b'] = 0*_gradient(")
        return files

    monkeypatch.setattr(rendering, "render", broken_render)
    out = tmp_path / "out"
    assert main(["generate", "--model", str(cosine), "--out", str(out), "-q", "--no-cache"]) == 2
    error = capsys.readouterr().err
    assert "proof failed for operator 'cosine_similarity'" in error and "gradient of 'b'" in error
    assert not out.exists()


def test_every_rendered_file_of_a_user_model_passes_its_proof(cosine):
    model = api.load(cosine)
    prove_files(model, api.render(model))  # api.render proves too; proving again must agree


GATED = '''"""A gate written with the user's own functions: y_i = x_i * swish(z_i)."""

import sympy as sp

from derive.model import Input, OperatorModel, index, size
from derive.registry import register


class gate(sp.Function):
    def fdiff(self, argindex=1):
        return gate(self.args[0]) * (1 - gate(self.args[0]))

    def as_elementary(self):
        return 1 / (1 + sp.exp(-self.args[0]))

    def _eval_evalf(self, prec):
        return self.as_elementary()._eval_evalf(prec)

    def _numpycode(self, printer):
        return f"(0.5 + 0.5*np.tanh(0.5*({printer._print(self.args[0])})))"


class swish(sp.Function):
    def fdiff(self, argindex=1):
        t = self.args[0]
        return gate(t) * (1 + t * (1 - gate(t)))

    def as_elementary(self):
        return self.args[0] / (1 + sp.exp(-self.args[0]))

    def _eval_evalf(self, prec):
        return self.as_elementary()._eval_evalf(prec)

    def _numpycode(self, printer):
        t = printer._print(self.args[0])
        return f"(({t})*(0.5 + 0.5*np.tanh(0.5*({t}))))"


@register
def gated() -> OperatorModel:
    n = size("n")
    i = index("i", n)
    x, z = Input("x", (n,)), Input("z", (n,))
    return OperatorModel(name="gated", summary="x * swish(z)", category="gates", inputs=(x, z),
                         output_indices=(i,), output=x[i] * swish(z[i]))
'''


def test_a_models_own_functions_are_read_back_from_its_twin(tmp_path):
    """The twin of a model with its own sp.Function classes (and one only its derivative uses) is
    proved: the loader is given those classes, and without them it names the unknown one."""
    path = tmp_path / "gated.py"
    path.write_text(GATED, encoding="utf-8")
    files = api.render(api.load(path))  # proved, the LaTeX twin included
    equations = json.loads(files["latex/gated.json"])["equations"]
    vjp_z = next(e for e in equations if e.get("kind") == "vjp" and e["input"] == "z")
    with pytest.raises(ValueError, match="gate"):
        load_srepr(vjp_z["rhs"])


def test_a_models_own_function_raised_to_a_power_is_printed_in_parentheses(tmp_path):
    """Regression (notebook 04's gated RMSNorm on the numba target): a model's own function printed
    as its elementary form, a quotient, lost its parentheses under a power (swish(z)**2 came out as
    z/(1 + exp(-z))**2) and the proof refused the kernel.  Every target's kernel of a model that
    squares such a function and divides by it is proved."""
    path = tmp_path / "gated_power.py"
    source = (GATED.replace("i = index(\"i\", n)", "i, j = index(\"i\", n), index(\"j\", n)")
              .replace("output=x[i] * swish(z[i]))",
                       "output=x[i] / sp.sqrt(sp.Sum((x[j] * swish(z[j]))**2, (j, 0, n - 1)) / n + 1))")
              .replace('name="gated"', 'name="gated_power"').replace("def gated()", "def gated_power()"))
    path.write_text(source, encoding="utf-8")
    files = api.render(api.load(path))  # every target, each file proved before it is returned
    assert {"numpy/gated_power.py", "numba/gated_power.py", "array_api/gated_power.py"} <= set(files)
