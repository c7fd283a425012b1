"""derive.torch: every operator's autograd.Function checked by torch.autograd.gradcheck, reverse and
forward mode, and by gradgradcheck (the double backward through the kernel's jvp and vjp_jvp), in
float64; inputs that are Python numbers or None to second order against PyTorch's own operators;
keyword parameters (a tensor one that requires grad refused), optional inputs, labels,
``needs_input_grad``, model files; the nn.Module norms against torch.nn's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import MODELS
from helpers.adapter_cases import ALL, IDS, NON_TENSOR, NON_TENSOR_IDS, torch_derivatives, torch_reference
from helpers.kernels import load_kernel

import derive.torch as dt
from derive.errors import UnknownOperatorError

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def tensors(case):
    """The case's arrays as tensors (None and Python numbers as they are)."""
    return [torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in case.arrays]


@pytest.mark.parametrize("case", ALL, ids=IDS)
def test_gradcheck_reverse_and_forward_mode(case):
    """The adapter's backward (the generated vjp) and jvp against torch's finite differences, and
    its forward against the generated NumPy kernel's."""
    function = dt.operator(case.name)
    given = tensors(case)
    floats = [given[p].clone().requires_grad_() for p in case.floats]
    call = case.of_floats(function, given)
    assert torch.autograd.gradcheck(call, floats, check_forward_ad=True, check_backward_ad=True)
    expected = load_kernel(case.name).forward(*case.arrays, **case.params)
    np.testing.assert_allclose(call(*floats).detach().numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", dt.MODES)
@pytest.mark.parametrize("case", ALL, ids=IDS)
def test_gradgradcheck_double_backward(case, mode):
    """The backward under ``create_graph=True`` is a node whose derivatives are the kernel's jvp (by
    the cotangent) and vjp_jvp (by the inputs): torch's finite differences of the backward agree,
    for the custom ops (numba kernels) and the autograd.Function (array_api kernel)."""
    function = dt.operator(case.name, mode=mode)
    given = tensors(case)
    floats = [given[p].clone().requires_grad_() for p in case.floats]
    call = case.of_floats(function, given)
    assert torch.autograd.gradgradcheck(call, floats, fast_mode=True)


@pytest.mark.filterwarnings("ignore:Using a target size")  # mse_loss of a number and a tensor
@pytest.mark.parametrize("mode", dt.MODES)
@pytest.mark.parametrize("case", NON_TENSOR, ids=NON_TENSOR_IDS)
def test_numbers_and_none_to_second_order(case, mode):
    """An input passed as a Python number (``mul(x, 2.0)``, ``div(2.0, x)``) or an optional one as
    None: the output, the backward and a double backward (``create_graph=True``, by the inputs and
    by the cotangent) are PyTorch's own operator's.  The double backward returns no gradient for
    the number (``needs_input_grad``); autograd refuses one."""
    cotangent, tangents = case.directions()
    ours = torch_derivatives(dt.operator(case.name, mode=mode), case, tensors(case), cotangent, tangents)
    for got, want in zip(ours, torch_reference(case, cotangent, tangents), strict=True):
        torch.testing.assert_close(got, want)


def kernel_run(function, mode):
    """The kernel module that ``function`` runs on CPU float64 tensors: numba's for the custom ops."""
    return function.kernel if mode == "function" else function.ops.numba[0]


@pytest.mark.parametrize("mode", dt.MODES)
def test_double_backward_runs_the_generated_second_order(monkeypatch, mode):
    """A Hessian-vector product through the adapter calls the kernel's vjp_jvp and jvp, and equals
    the kernel's vjp_jvp (by the Hessian's symmetry) and PyTorch's own double backward."""
    layernorm = dt.operator("layernorm", mode=mode)
    layernorm(torch.ones(1, 2, dtype=torch.float64))  # loads the kernel it runs
    kernel = kernel_run(layernorm, mode)
    calls = []
    for name in ("vjp_jvp", "jvp"):
        original = getattr(kernel, name)
        monkeypatch.setattr(kernel, name, lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k))
    generator = torch.Generator().manual_seed(3)
    x, gamma, beta = (torch.randn(*s, dtype=torch.float64, generator=generator, requires_grad=True)
                      for s in ((3, 6), (6,), (6,)))
    dy = torch.randn(3, 6, dtype=torch.float64, generator=generator, requires_grad=True)
    tangents = [torch.randn_like(t) for t in (x, gamma, beta)]
    mine = torch.autograd.grad(layernorm(x, gamma, beta), (x, gamma, beta), dy, create_graph=True)
    hvp = torch.autograd.grad(mine, (x, gamma, beta, dy), tangents, allow_unused=True)
    assert calls == ["jvp", "vjp_jvp"]
    theirs = torch.autograd.grad(torch.nn.functional.layer_norm(x, (6,), gamma, beta), (x, gamma, beta), dy,
                                 create_graph=True)
    expected = torch.autograd.grad(theirs, (x, gamma, beta, dy), tangents, allow_unused=True)
    direct = dt.operator("layernorm", mode="function").kernel.vjp_jvp(dy.detach(), tangents, x.detach(),
                                                                      gamma.detach(), beta.detach())
    for got, want in zip(hvp, expected):
        torch.testing.assert_close(got, torch.zeros_like(got) if want is None else want)
    for got, want in zip(hvp, direct):
        torch.testing.assert_close(got, want)


def test_parameters_are_passed_through_fixed_or_per_call():
    x = torch.randn(4, 5, dtype=torch.float64)
    leaky = dt.operator("leaky_relu", negative_slope=0.2)
    torch.testing.assert_close(leaky(x), torch.nn.functional.leaky_relu(x, 0.2))
    torch.testing.assert_close(leaky(x, negative_slope=0.5), torch.nn.functional.leaky_relu(x, 0.5))
    softmax = dt.operator("softmax")
    torch.testing.assert_close(softmax(x, axis=0), torch.softmax(x, dim=0))
    gelu = dt.operator("gelu", approximate="tanh")
    torch.testing.assert_close(gelu(x), torch.nn.functional.gelu(x, approximate="tanh"))


def test_a_parameter_tensor_that_requires_grad_is_refused():
    """A keyword parameter autograd would differentiate (requires_grad, torch.func.grad, a forward-mode
    tangent) is a TypeError naming it, never a gradient silently missing; detached, or where nothing
    is differentiated (no_grad), a tensor parameter is a number like any other."""
    rmsnorm = dt.operator("rmsnorm")
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    eps = torch.tensor(0.25, dtype=torch.float64, requires_grad=True)
    with pytest.raises(TypeError, match="rmsnorm: the parameter 'eps' is a tensor that requires grad.*eps.detach"):
        rmsnorm(x, eps=eps)
    with pytest.raises(TypeError, match="leaky_relu: the parameter 'negative_slope'"):
        dt.operator("leaky_relu", negative_slope=eps)(x)
    with pytest.raises(TypeError, match="the parameter 'eps'"):
        torch.func.grad(lambda e: rmsnorm(x, eps=e).sum())(eps.detach())
    with pytest.raises(TypeError, match="the parameter 'eps'"):
        torch.func.jvp(lambda e: rmsnorm(x, eps=e), (eps.detach(),), (torch.ones_like(eps),))
    expected = torch.nn.functional.rms_norm(x, (4,), eps=0.25)
    y = rmsnorm(x, eps=eps.detach())
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(torch.autograd.grad(y.sum(), x), torch.autograd.grad(expected.sum(), x))
    with torch.no_grad():
        torch.testing.assert_close(rmsnorm(x, eps=eps), expected)


def test_optional_inputs_by_name_or_omitted():
    x, beta = torch.randn(3, 6, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    layernorm = dt.operator("layernorm")
    expected = torch.nn.functional.layer_norm(x, (6,), None, beta, 1e-5)
    torch.testing.assert_close(layernorm(x, beta=beta), expected)
    torch.testing.assert_close(layernorm(x, None, beta), expected)
    torch.testing.assert_close(layernorm(x), torch.nn.functional.layer_norm(x, (6,), eps=1e-5))


def test_bad_calls_are_named():
    rmsnorm = dt.operator("rmsnorm")
    x = torch.randn(2, 3)
    with pytest.raises(TypeError, match="rmsnorm: unknown keyword 'epsilon'"):
        rmsnorm(x, epsilon=1.0)
    with pytest.raises(TypeError, match="input 'x' is required"):
        rmsnorm(gamma=torch.ones(3))
    with pytest.raises(TypeError, match="takes at most 3 inputs"):
        rmsnorm(x, x, x, x)
    with pytest.raises(TypeError, match="unknown keyword 'slope'"):
        dt.operator("leaky_relu", slope=0.1)
    with pytest.raises(UnknownOperatorError):
        dt.operator("rmsnrom")


def test_only_the_gradients_asked_for_are_computed(monkeypatch):
    """ctx.needs_input_grad: the kernel's vjp is asked (``wrt``) for the gradients some input needs
    and computes no other; the vjp is not run at all when none does (no graph)."""
    rmsnorm = dt.operator("rmsnorm", mode="function")
    calls, original = [], rmsnorm.kernel.vjp
    monkeypatch.setattr(rmsnorm.kernel, "vjp", lambda *a, **k: calls.append(k["wrt"]) or original(*a, **k))
    x, gamma, beta = (torch.randn(*s, dtype=torch.float64) for s in ((3, 4), (4,), (4,)))
    y = rmsnorm(x, gamma.requires_grad_(), beta)
    with torch.no_grad():  # as the autograd engine calls it
        returned = y.grad_fn.apply(torch.ones_like(y))
    assert [r is not None for r in returned] == [False, False, False, False, True, False]
    assert calls == [["gamma"]]
    assert rmsnorm(x, gamma.detach(), beta).grad_fn is None


@pytest.mark.parametrize("mode", dt.MODES)
def test_the_gradient_is_the_generated_vjp(monkeypatch, mode):
    """The backward runs the kernel's vjp (not torch's autograd through the kernel's forward)."""
    softmax = dt.operator("softmax", mode=mode)
    softmax(torch.ones(1, 2, dtype=torch.float64))
    kernel = kernel_run(softmax, mode)
    calls = []
    original = kernel.vjp
    monkeypatch.setattr(kernel, "vjp", lambda *a, **k: calls.append(k) or original(*a, **k))
    x = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    y = softmax(x, axis=0)
    y.sum().backward()
    saved = [call.pop("residuals") for call in calls if "residuals" in call]
    buffers = [call.pop("out") for call in calls if "out" in call]
    assert calls == [{"axis": 0, "wrt": ["x"]}]
    if mode == "op":  # the output the forward saved, not recomputed; the gradient into torch's buffer
        np.testing.assert_array_equal(saved[0]["y"], y.detach().numpy())
        assert buffers[0][0].__array_interface__["data"][0] == x.grad.data_ptr()


@pytest.mark.parametrize(("name", "saved"), [("rmsnorm", {"r"}), ("layernorm", {"mu", "sigma"}),
                                            ("log_softmax", {"y"})])
def test_the_backward_uses_the_forwards_residuals(monkeypatch, name, saved):
    """mode="op": the numba vjp gets the residuals the forward saved (the engine's choice: per-row
    statistics, or the output), each the forward kernel's own; the gradients are those of a vjp
    that recomputes them."""
    function, shape = dt.operator(name), (3, 5)
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    function(x)
    numba, calls = function.ops.numba[0], []
    original = numba.vjp
    monkeypatch.setattr(numba, "vjp", lambda *a, **k: calls.append(k.get("residuals")) or original(*a, **k))
    dy = torch.randn(*shape, dtype=torch.float64)
    (grad,) = torch.autograd.grad(function(x), x, dy)
    _, expected = numba.forward(x.detach().numpy(), residuals=True)
    assert set(calls[0]) == saved
    for key in saved:
        np.testing.assert_allclose(calls[0][key], expected[key], rtol=1e-15)
    np.testing.assert_allclose(grad.numpy(), original(dy.numpy(), x.detach().numpy())[0], rtol=1e-12)


def test_labels_get_no_gradient():
    cross_entropy = dt.operator("cross_entropy")
    logits = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 2, 1, 1, 0])
    loss = cross_entropy(logits, target)
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits, target))
    (grad,) = torch.autograd.grad(loss, logits)
    (expected,) = torch.autograd.grad(torch.nn.functional.cross_entropy(logits, target), logits)
    torch.testing.assert_close(grad, expected)


def test_float32_in_float32_out_with_gradients():
    rmsnorm = dt.operator("rmsnorm")
    x = torch.randn(4, 8, requires_grad=True)
    gamma = torch.ones(8, requires_grad=True)
    y = rmsnorm(x, gamma)
    y.square().sum().backward()
    assert y.dtype == x.grad.dtype == gamma.grad.dtype == torch.float32


def test_a_model_file_is_generated_and_differentiated(private_render_cache):
    """Generated (and proved) into the cache folder ($DERIVE_CACHE_DIR/kernels), loaded from there."""
    huber = dt.operator(MODELS / "huber_loss.py", delta=0.5)
    a = torch.randn(7, dtype=torch.float64, requires_grad=True)
    b = torch.randn(7, dtype=torch.float64)
    torch.testing.assert_close(huber(a, b), torch.nn.functional.huber_loss(a, b, delta=0.5))
    assert torch.autograd.gradcheck(lambda a: huber(a, b), (a,), check_forward_ad=True)
    assert list((private_render_cache / "kernels").glob("*/array_api/huber_loss.py"))


# -- the nn.Module norms against torch.nn's -------------------------------------------------------


def _pair(ours, theirs, x):
    """Outputs and every gradient (input and parameters) of two modules with the same parameters."""
    with torch.no_grad():
        for name, parameter in theirs.named_parameters():
            parameter.copy_(torch.randn_like(parameter))
            getattr(ours, name).copy_(parameter)
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [(n, p.shape) for n, p in theirs.named_parameters()]
    results = []
    for module in (ours, theirs):
        inputs = x.clone().requires_grad_()
        y = module(inputs)
        dy = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)
        grads = torch.autograd.grad(y, [inputs, *module.parameters()], dy)
        results.append((y, grads))
    (y, grads), (y_torch, grads_torch) = results
    torch.testing.assert_close(y, y_torch)
    for grad, expected in zip(grads, grads_torch):
        torch.testing.assert_close(grad, expected)


def untracked(module):
    """``module`` (a batch norm class) without running statistics: the batch's in eval mode too."""
    return lambda: module(4, track_running_stats=False)


MODULES = {
    "RMSNorm": (lambda: dt.RMSNorm(6, eps=1e-5, bias=False), lambda: torch.nn.RMSNorm(6, eps=1e-5), (4, 3, 6)),
    "RMSNorm-default-eps": (lambda: dt.RMSNorm((2, 3), bias=False), lambda: torch.nn.RMSNorm((2, 3)), (4, 2, 3)),
    "LayerNorm": (lambda: dt.LayerNorm(6), lambda: torch.nn.LayerNorm(6), (4, 3, 6)),
    "LayerNorm-2-axes": (lambda: dt.LayerNorm((2, 3), eps=1e-3), lambda: torch.nn.LayerNorm((2, 3), eps=1e-3),
                         (4, 2, 3)),
    "LayerNorm-no-bias": (lambda: dt.LayerNorm(6, bias=False), lambda: torch.nn.LayerNorm(6, bias=False), (5, 6)),
    "GroupNorm": (lambda: dt.GroupNorm(2, 6), lambda: torch.nn.GroupNorm(2, 6), (3, 6, 4, 2)),
    "GroupNorm-no-affine": (lambda: dt.GroupNorm(3, 6, affine=False), lambda: torch.nn.GroupNorm(3, 6, affine=False),
                            (3, 6, 5)),
    "BatchNorm-2d": (untracked(dt.BatchNorm), untracked(torch.nn.BatchNorm2d), (3, 4, 2, 5)),
    "BatchNorm-1d": (untracked(dt.BatchNorm), untracked(torch.nn.BatchNorm1d), (6, 4)),
}


@pytest.mark.parametrize("name", MODULES)
def test_module_matches_torch_nn(name):
    ours, theirs, shape = MODULES[name]
    torch.manual_seed(0)
    _pair(ours().double(), theirs().double(), torch.randn(*shape, dtype=torch.float64))


def test_rmsnorm_module_bias_is_beta():
    module = dt.RMSNorm(5, bias=True).double()
    assert module.bias is not None and module.bias.shape == module.weight.shape == (5,)
    with torch.no_grad():
        module.bias.copy_(torch.arange(5.0))
    x = torch.randn(2, 5, dtype=torch.float64)
    expected = torch.nn.functional.rms_norm(x, (5,), module.weight) + torch.arange(5.0, dtype=torch.float64)
    torch.testing.assert_close(module(x), expected)


def test_batchnorm_uses_batch_statistics_in_eval_mode_too():
    x = torch.randn(4, 3, 2, dtype=torch.float64)
    module = dt.BatchNorm(3, track_running_stats=False).double().eval()
    torch.testing.assert_close(module(x), torch.nn.BatchNorm1d(3, track_running_stats=False).double().eval()(x))
