"""The functions users write in their models: Max/Min, Abs, sign, Piecewise, max_over, log-sum-exp.

Each model in ``tests/models/`` is written as a user would (like the README's swiglu example).
Its generated kernel is compared with PyTorch in float64 (forward, every input's vjp, and the jvp
by ``torch.func.jvp`` with all tangents and each alone), with central finite differences of its
own forward, and at the kinks with PyTorch's choice there; its LaTeX document and ``derive show``
must render.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import sympy as sp
import torch
from helpers import GENERATED, MODELS, finite_differences

import derive
import derive.model.functions
from derive.calculus.concrete import entry_symbol, expand
from derive.calculus.indices import free_indices
from derive.cli import main
from derive.model.functions import elementary

pytestmark = pytest.mark.xdist_group("functions")
"""One worker renders each model once (the ``kernels`` fixture is per process) and runs these."""

F = torch.nn.functional


def amax(x):
    return torch.amax(x, dim=-1, keepdim=True)


CASES = {  # model file -> (torch reference, parameters, one core shape per input)
    "l2_normalize": (lambda x, eps=1e-12: F.normalize(x, dim=-1, eps=eps), {}, "last"),
    "l2_piecewise": (lambda x, eps=1e-12: F.normalize(x, dim=-1, eps=eps), {}, "last"),
    "cosine_similarity": (lambda a, b, eps=1e-8: F.cosine_similarity(a, b, dim=-1, eps=eps), {}, "last"),
    "huber_loss": (lambda a, b, delta=1.0: F.huber_loss(a, b, delta=delta), {"delta": 0.7}, "any"),
    "abs_sign": (lambda a, b: torch.abs(a - b) + torch.sign(a) * b, {}, "last"),
    "extrema": (lambda a, b: torch.maximum(a, b) + torch.clamp_max(a, 0.5), {}, "last"),
    "max_shift": (lambda x: (x - amax(x)) * amax(x), {}, "last"),
    "max_of_three": (lambda a, b, c: torch.clamp_min(torch.amax(torch.stack([a, b, c]), dim=0), 0.1), {}, "last"),
    "logsumexp": (lambda x: torch.logsumexp(x, dim=-1), {}, "last"),
    "log_softmax_written": (lambda x: torch.log_softmax(x, dim=-1), {}, "last"),
}
SHAPES = {"last": [(1,), (4,), (2, 3), (2, 3, 5)], "any": [(1,), (6,), (3, 4), (2, 1, 3)]}


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    """Each model's NumPy kernel, rendered once into a temporary folder (the derivation and the
    kernel only; the LaTeX documents are rendered by their own tests)."""
    folder, loaded = tmp_path_factory.mktemp("function_kernels"), {}

    def get(name: str):
        if name not in loaded:
            files = derive.render(derive.load(MODELS / f"{name}.py"), ["numpy"])
            path = folder / f"{name}.py"
            path.write_text(files[f"numpy/{name}.py"], encoding="utf-8")
            loaded[name] = derive.load_kernel(path)
        return loaded[name]

    return get


def _torch_values(reference, arrays, params):
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    return tensors, reference(*tensors, **params)


def _tangent_sets(arrays, rng):
    """All tangents, then each input's alone (None for the others)."""
    full = [rng.standard_normal(a.shape) for a in arrays]
    alone = [[t if p == q else None for q, t in enumerate(full)] for p in range(len(full))]
    return [full, *alone] if len(full) > 1 else [full]


def _torch_jvp(reference, arrays, tangents, params):
    primals = tuple(torch.tensor(a) for a in arrays)
    directions = tuple(torch.tensor(t if t is not None else np.zeros_like(a)) for a, t in zip(arrays, tangents))
    return torch.func.jvp(lambda *xs: reference(*xs, **params), primals, directions)[1].numpy()


CASE_SHAPES = [(name, shape) for name, (_, _, kind) in CASES.items() for shape in SHAPES[kind]]


@pytest.mark.parametrize("name,shape", CASE_SHAPES, ids=[f"{n}-{s}" for n, s in CASE_SHAPES])
def test_kernel_matches_torch(name, shape, kernels, rng):
    reference, params, _ = CASES[name]
    kernel = kernels(name)
    arrays = [rng.standard_normal(shape) for _ in kernel.INPUTS]
    tensors, expected = _torch_values(reference, arrays, params)
    y = kernel.forward(*arrays, **params)
    np.testing.assert_allclose(y, expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    dy = rng.standard_normal(np.shape(y))
    grads = kernel.vjp(dy, *arrays, **params)
    expected_grads = torch.autograd.grad(expected, tensors, torch.tensor(dy))
    for inp, got, want in zip(kernel.INPUTS, grads, expected_grads):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-9, atol=1e-12, err_msg=f"vjp for {inp}")
    for tangents in _tangent_sets(arrays, rng):
        got = kernel.jvp(tuple(tangents), *arrays, **params)
        np.testing.assert_allclose(got, _torch_jvp(reference, arrays, tangents, params), rtol=1e-9, atol=1e-12,
                                   err_msg=f"jvp along {[t is not None for t in tangents]}")


@pytest.mark.parametrize("name", list(CASES))
def test_kernel_matches_finite_differences(name, kernels, rng):
    """The jvp along a random direction, and <dy, vjp> = <jvp, dy>, against central differences."""
    _, params, kind = CASES[name]
    kernel = kernels(name)
    shape = SHAPES[kind][2]
    arrays = [rng.standard_normal(shape) for _ in kernel.INPUTS]
    tangents = [rng.standard_normal(shape) for _ in kernel.INPUTS]
    numeric = finite_differences.jvp(kernel.forward, tangents, arrays, params)
    np.testing.assert_allclose(kernel.jvp(tuple(tangents), *arrays, **params), numeric, rtol=1e-6, atol=1e-7)
    dy = rng.standard_normal(np.shape(numeric))
    grads = kernel.vjp(dy, *arrays, **params)
    assert np.isclose(sum(np.sum(g * t) for g, t in zip(grads, tangents)), np.sum(dy * numeric), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", list(CASES))
def test_vjp_matches_sympy_diff_of_the_expanded_model(name, kernels, rng):
    """The oracle: the model's sums written out into scalars at n = 1, 2, 3, differentiated with plain
    ``sympy.diff`` (real entries), evaluated at a random point, against the kernel's vjp."""
    model, kernel, params = derive.load(MODELS / f"{name}.py"), kernels(name), CASES[name][1]
    values = {p.symbol: params.get(p.name, p.default) for p in model.params if p.symbol is not None}
    for n in (1, 2, 3):
        sizes = {d: n for d in model.dims()}
        arrays = {inp.name: rng.standard_normal(tuple(n for _ in inp.dims)) for inp in model.inputs}
        point = {entry_symbol(name_, at): value for name_, array in arrays.items()
                 for at, value in np.ndenumerate(array)}
        real = {s: sp.Symbol(s.name, real=True) for s in point}
        outputs = list(itertools.product(*(range(n) for _ in model.output_dims)))
        dy = rng.standard_normal(len(outputs))
        loss = sum(w * elementary(expand(model.output, sizes, dict(zip(model.output_indices, at))))
                   for w, at in zip(dy, outputs)).xreplace(real)
        numbers = {real[s]: v for s, v in point.items()} | values
        grads = kernel.vjp(dy.reshape(np.shape(kernel.forward(*arrays.values(), **params))),
                           *arrays.values(), **params)
        for inp, grad in zip(model.inputs, grads):
            for at, got in np.ndenumerate(grad):
                expected = float(sp.diff(loss, real[entry_symbol(inp.name, at)]).xreplace(numbers).evalf())
                assert got == pytest.approx(expected, rel=1e-9, abs=1e-12), f"d{inp.name}{at} at n = {n}"


KINKS = {  # model -> (inputs placed on the kinks, parameters)
    "abs_sign": ([[0.0, 1.0, -2.0, 0.5, 0.0]], [[0.0, 1.0, 3.0, -1.0, 2.0]]),
    "extrema": ([[0.5, 1.0, -2.0, 0.5, 0.25]], [[0.5, 1.0, 3.0, -1.0, 0.25]]),
    "max_shift": ([[1.0, 3.0, 3.0, 0.5], [2.0, 2.0, 2.0, 2.0]],),
    "max_of_three": ([[1.0, 2.0, 0.1, 0.1, 0.0]], [[1.0, 2.0, 0.0, 0.1, 0.0]], [[1.0, 0.5, 0.1, 0.1, 0.0]]),
    "huber_loss": ([[1.5, -0.5, 0.0, 2.0]], [[0.5, 0.5, 0.0, 1.0]]),
    "l2_normalize": ([[3.0, 4.0], [0.0, 0.0], [0.6, 0.8]],),
}
"""Ties and kinks: |0|, sign(0), max(a, a), min(a, bound) at the bound, several maxima along an axis,
|a - b| = delta for Huber (delta = 1), a norm equal to eps (eps = 5) and a zero row for normalize."""
KINK_PARAMS = {"huber_loss": {"delta": 1.0}, "l2_normalize": {"eps": 5.0}}


@pytest.mark.parametrize("name", list(KINKS))
def test_kinks_follow_torch(name, kernels, rng):
    reference = CASES[name][0]
    params = KINK_PARAMS.get(name, {})
    arrays = [np.array(a) for a in KINKS[name]]
    kernel = kernels(name)
    tensors, expected = _torch_values(reference, arrays, params)
    with np.errstate(divide="ignore", invalid="ignore"):  # np.where evaluates the branch it drops
        y = kernel.forward(*arrays, **params)
        dy = rng.standard_normal(np.shape(y))
        grads = kernel.vjp(dy, *arrays, **params)
        tangents = [rng.standard_normal(a.shape) for a in arrays]
        tangent_out = kernel.jvp(tuple(tangents), *arrays, **params)
    np.testing.assert_allclose(y, expected.detach().numpy(), rtol=1e-12, atol=1e-14)
    for got, want in zip(grads, torch.autograd.grad(expected, tensors, torch.tensor(dy))):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(tangent_out, _torch_jvp(reference, arrays, tangents, params), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name,torch_op", [("logsumexp", torch.logsumexp), ("log_softmax_written", torch.log_softmax)])
def test_log_sum_exp_is_finite_at_large_float32_inputs(name, torch_op, kernels, rng):
    """log(sum exp) is printed shifted by the maximum: finite at 1e4 in float32, as PyTorch."""
    kernel = kernels(name)
    x = (1e4 + 3 * rng.standard_normal((3, 7))).astype(np.float32)
    y = kernel.forward(x)
    assert y.dtype == np.float32 and np.isfinite(y).all()
    np.testing.assert_allclose(y, torch_op(torch.tensor(x), dim=-1).numpy(), rtol=1e-6, atol=1e-3)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    grad, = kernel.vjp(dy, x)
    assert grad.dtype == np.float32 and np.isfinite(grad).all()
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)  # float32's own rounding of the max is
    expected, = torch.autograd.grad(torch_op(xt, dim=-1), xt, torch.tensor(dy, dtype=torch.float64))  # ~5e-4
    np.testing.assert_allclose(grad, expected.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["l2_piecewise", "l2_normalize"])
def test_the_clamp_is_chosen_row_by_row(name, kernels, rng):
    """A Piecewise on the row's norm (an np.where) and a Max with it (np.maximum) choose per row:
    in one call, rows whose norm is above eps and rows below it follow PyTorch (forward, vjp)."""
    reference, params = CASES[name][0], {"eps": 2.0}
    x = np.array([[3.0, 4.0, 0.0], [0.3, -0.4, 0.5], [0.0, 0.0, 0.0], [-6.0, 1.0, 2.0]])  # norms 5, 0.7, 0, 6.4
    tensors, expected = _torch_values(reference, [x], params)
    dy = rng.standard_normal(x.shape)
    (want,) = torch.autograd.grad(expected, tensors, torch.tensor(dy))
    with np.errstate(divide="ignore", invalid="ignore"):  # np.where evaluates the branch it drops
        y, (got,) = kernels(name).forward(x, **params), kernels(name).vjp(dy, x, **params)
    np.testing.assert_allclose(y, expected.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-12, atol=1e-14)


def test_log_sum_exp_is_shifted_by_the_row_maximum(kernels, rng):
    """log(sum exp) at 1000 (exp overflows float64 at 710): what it is at 0, plus 1000."""
    x = rng.standard_normal((3, 5))
    kernel = kernels("logsumexp")
    np.testing.assert_allclose(kernel.forward(x + 1000.0), kernel.forward(x) + 1000.0, rtol=1e-14)
    dy = rng.standard_normal(3)
    np.testing.assert_allclose(kernel.vjp(dy, x + 1000.0)[0], kernel.vjp(dy, x)[0], rtol=1e-10, atol=1e-13)


def test_attention_document_states_the_shift_its_kernel_makes(rng):
    """A ratio of exponentials (attention's softmax) gets the same shifted form, stated in its
    document; the kernel computes it: scores of a thousand give what PyTorch gives."""
    root = GENERATED
    body = (root / "latex" / "scaled_dot_product_attention-body.tex").read_text(encoding="utf-8")
    assert "eq:scaled_dot_product_attention:stable-output" in body and "cancels" in body
    kernel = derive.load_kernel(root / "numpy" / "scaled_dot_product_attention.py")
    q, k, v = 30 * rng.standard_normal((2, 3, 4)), 30 * rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 5, 2))
    for causal in (False, True):
        expected = F.scaled_dot_product_attention(*map(torch.tensor, (q, k, v)), is_causal=causal).numpy()
        assert np.abs(np.einsum("bld,bsd->bls", q, k)).max() / 2 > 710  # exp would overflow unshifted
        np.testing.assert_allclose(kernel.forward(q, k, v, causal=causal), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", [name for name in CASES if name != "max_of_three"])  # 10 s; Max is in others
def test_latex_document_renders_with_its_conventions(name):
    """Every step check passes (it raised for Abs before), and the numerical section states the
    convention at each kink the model has."""
    files = derive.render(derive.load(MODELS / f"{name}.py"), ["latex"])
    body = files[f"latex/{name}-body.tex"]
    expected = {"abs_sign": ["torch.abs", "torch.sign"], "huber_loss": ["torch.abs", "piecewise"],
                "extrema": ["torch.maximum", "torch.clamp\\_max"], "l2_normalize": ["torch.clamp\\_min"],
                "cosine_similarity": ["torch.clamp\\_min"], "l2_piecewise": ["piecewise"],
                "max_shift": ["torch.amax"],
                "logsumexp": ["eq:logsumexp:stable-output"],
                "log_softmax_written": ["eq:log_softmax_written:stable-output"]}[name]
    section = body[body.index("Numerical form and conventions"):body.index("How these equations were checked")]
    for text in expected:
        assert text in section
    if name == "l2_piecewise":
        assert r"\begin{cases}" in body  # and chosen row by row in the kernel: test_the_clamp_is_chosen_row_by_row


@pytest.mark.parametrize("name", ["huber_loss", "l2_normalize", "max_shift"])
def test_show_renders(name, capsys):
    assert main(["show", "--model", str(MODELS / f"{name}.py"), "--ascii"]) == 0
    assert "vjp" in capsys.readouterr().out


def test_generate_writes_a_huber_model(tmp_path):
    """`derive generate --model` of a model with Abs and Piecewise (it crashed in the LaTeX step check)."""
    out = tmp_path / "out"
    assert main(["generate", "--model", str(MODELS / "huber_loss.py"), "--out", str(out), "-q",
                 "--no-cache", "--jobs", "1"]) == 0
    kernel = derive.load_kernel(out / "numpy" / "huber_loss.py")
    a, b = np.array([0.2, 3.0]), np.array([0.0, 0.0])
    assert kernel.forward(a, b) == pytest.approx((0.5 * 0.2**2 + (3.0 - 0.5)) / 2)
    assert (out / "latex" / "huber_loss.tex").is_file()


def test_a_per_row_condition_leaves_the_sum():
    """A Piecewise on the row's norm does not block the contraction: the vjp and jvp are O(n)
    (each branch depends on at most one index), with the sums inside the branches."""
    gradient = derive.derive(derive.load(MODELS / "l2_piecewise.py")).gradient("x")
    for expr in (gradient.vjp, gradient.jvp):
        pieces = expr.atoms(sp.Piecewise)
        assert pieces
        for piece in pieces:
            assert all(len(free_indices(value)) <= 1 for value, _ in piece.args)


def test_cosine_similarity_below_eps_is_the_derivative_of_its_forward(kernels):
    """Below eps the kernel differentiates the clamped formula (finite differences agree); PyTorch's
    in-place clamp gives another value there, as the README says (1.38e7 against 2.18e7)."""
    kernel = kernels("cosine_similarity")
    a, b = np.array([1e-9, 2e-9, -1e-9]), np.array([0.5, 1.0, -2.0])
    forward = F.cosine_similarity(torch.tensor(a), torch.tensor(b), dim=-1, eps=1e-8).item()
    assert kernel.forward(a, b) == pytest.approx(forward, rel=1e-12)  # each norm clamped, not their product
    da, db = kernel.vjp(np.array(1.0), a, b)
    step = np.array([1e-13, 0.0, 0.0])
    numeric = (kernel.forward(a + step, b) - kernel.forward(a - step, b)) / 2e-13
    assert da[0] == pytest.approx(numeric, rel=1e-6) and da[0] == pytest.approx(2.18e7, rel=1e-2)
    at, bt = torch.tensor(a, requires_grad=True), torch.tensor(b)
    (torch_da,) = torch.autograd.grad(F.cosine_similarity(at, bt, dim=-1, eps=1e-8), at)
    assert torch_da[0].item() == pytest.approx(1.38e7, rel=1e-2)


@pytest.mark.parametrize("name", ["l2_normalize", "huber_loss", "extrema", "max_shift", "l2_piecewise"])
def test_float32_in_float32_out(name, kernels, rng):
    kernel, params = kernels(name), CASES[name][1]
    arrays = [rng.standard_normal((2, 5)).astype(np.float32) for _ in kernel.INPUTS]
    y = kernel.forward(*arrays, **params)
    grads = kernel.vjp(np.ones_like(y), *arrays, **params)
    tangent = kernel.jvp(tuple(np.ones_like(a) for a in arrays), *arrays, **params)
    assert {np.asarray(v).dtype for v in (y, *grads, tangent)} == {np.dtype(np.float32)}


@pytest.mark.parametrize("output,message", [
    (lambda x, i, j: sp.Piecewise((x[i], x[i] > 0)), "has no otherwise-branch; end it with"),
    (lambda x, i, j: x[i] - derive.model.functions.max_over(x[j], sp.Symbol("j")), "is not an index; write max_over"),
])
def test_malformed_functions_are_named(output, message):
    from derive.calculus.validate import ModelError
    from derive.model import Input, OperatorModel, index, size

    n = size("n")
    i, j = index("i", n), index("j", n)
    x = Input("x", (n,))
    model = OperatorModel("bad", "bad", "elementwise", (x,), (i,), output(x, i, j))
    with pytest.raises(ModelError, match=message):
        derive.derive(model)
