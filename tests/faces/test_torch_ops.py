"""derive.torch's custom ops (mode="op"): ``torch.library.opcheck`` of every operator's four ops,
``torch.compile(fullgraph=True)`` of a model of derive modules (no graph break, no warning, the same
outputs and gradients), the numba kernel on CPU tensors without copies, and the modules as drop-ins
for torch.nn's (``load_state_dict`` both ways, BatchNorm's running statistics)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from helpers import OPERATORS
from helpers.adapter_cases import cases

import derive.torch as dt
from derive.torch.ops import residual_names

FIRST = [cases(name)[0] for name in OPERATORS]


def _arguments(case, requires_grad):
    """The case's arrays as float64 tensors (labels as they are); numbers as 0-d tensors, as the ops take them."""
    found = []
    for position, value in enumerate(case.arrays):
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(value.copy())
            if position in case.floats and requires_grad:
                value.requires_grad_()
        elif isinstance(value, float):
            value = torch.tensor(value, dtype=torch.float64)
        found.append(value)
    return found


@pytest.mark.parametrize("case", FIRST, ids=[case.name for case in FIRST])
def test_opcheck_every_operator(case):
    """The schema, the fake implementation (shapes, dtypes and strides as the real one's) and the
    autograd registration of the forward, vjp, jvp and vjp_jvp ops; the graph AOT autograd traces
    with dynamic shapes (seconds per op) for the two a compiled training step runs, forward and vjp."""
    function = dt.operator(case.name)
    ops, signature = function.ops, function.signature
    params = {**signature.params, **case.params}
    inputs = _arguments(case, requires_grad=True)
    output, statistics = ops.forward(*inputs, **params)
    statistic = iter(statistics)
    residuals = [output if name == "y" else next(statistic) for name in residual_names(ops, inputs)]
    cotangent = torch.randn_like(output, dtype=torch.float64)
    wrt = [p in case.floats for p in range(len(inputs))]
    tangents = [torch.randn_like(a) if p in case.floats else None for p, a in enumerate(inputs)]
    plain = [a.detach() if isinstance(a, torch.Tensor) else a for a in inputs]
    torch.library.opcheck(ops.forward, tuple(inputs), params)
    for saved in [[r.detach() for r in residuals]] + ([[]] if residuals else []):  # with residuals, without
        torch.library.opcheck(ops.vjp, (cotangent.requires_grad_(), *inputs, saved), {**params, "wrt": wrt})
    quick = ("test_schema", "test_autograd_registration", "test_faketensor")
    torch.library.opcheck(ops.jvp, (*tangents, *plain), params, test_utils=quick)
    torch.library.opcheck(ops.vjp_jvp, (cotangent.detach(), *tangents, *plain), {**params, "wrt": wrt},
                          test_utils=quick)


# -- torch.compile ---------------------------------------------------------------------------------


class Block(torch.nn.Module):
    """A pre-norm block of every derive module: RMSNorm, Linear, softmax, LayerNorm, GroupNorm, BatchNorm."""

    def __init__(self, features: int = 8) -> None:
        super().__init__()
        self.rms, self.layer = dt.RMSNorm(features), dt.LayerNorm(features)
        self.linear = torch.nn.Linear(features, features)
        self.group, self.batch = dt.GroupNorm(2, features), dt.BatchNorm1d(features)
        self.softmax = dt.operator("softmax")

    def forward(self, x):
        h = self.softmax(self.linear(self.rms(x)), axis=-1) + x
        return self.batch(self.group(self.layer(h).unsqueeze(-1)).squeeze(-1))


def test_compile_fullgraph_has_no_graph_break_and_no_warning():
    """torch.compile(fullgraph=True) of derive modules, forward and backward: it compiles (a graph
    break would raise), dynamo counts no break, nothing warns (PyTorch's own deprecation of
    torch.jit.script_method, which its compiler's import raises for a model of torch.nn modules
    alike, aside), and outputs, gradients and BatchNorm's running statistics are eager's.
    The aot_eager backend: the tracing inductor does, without compiling C++ (seconds, not a minute)."""
    from torch._dynamo.utils import counters

    torch.manual_seed(0)
    eager = Block()
    compiled = Block()
    compiled.load_state_dict(eager.state_dict())
    x = torch.randn(6, 8)
    counters.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", message="`torch.jit.script_method` is deprecated")
        y = torch.compile(compiled, fullgraph=True, backend="aot_eager")(x)
        grads = torch.autograd.grad(y.square().sum(), list(compiled.parameters()))
    assert [str(w.message) for w in caught] == []
    assert not counters["graph_break"]
    y_eager = eager(x)
    torch.testing.assert_close(y, y_eager)
    for got, want in zip(grads, torch.autograd.grad(y_eager.square().sum(), list(eager.parameters()))):
        torch.testing.assert_close(got, want)
    torch.testing.assert_close(compiled.batch.running_var, eager.batch.running_var)
    assert y.dtype == torch.float32


# -- drop-in modules -------------------------------------------------------------------------------

DROP_IN = {
    "RMSNorm": (lambda: torch.nn.RMSNorm(6), lambda: dt.RMSNorm(6), (4, 3, 6)),
    "LayerNorm": (lambda: torch.nn.LayerNorm(6), lambda: dt.LayerNorm(6), (4, 3, 6)),
    "GroupNorm": (lambda: torch.nn.GroupNorm(2, 6), lambda: dt.GroupNorm(2, 6), (3, 6, 4, 2)),
    "BatchNorm2d": (lambda: torch.nn.BatchNorm2d(6), lambda: dt.BatchNorm2d(6), (5, 6, 3, 2)),
    "BatchNorm1d-momentum-None": (lambda: torch.nn.BatchNorm1d(6, momentum=None),
                                  lambda: dt.BatchNorm1d(6, momentum=None), (5, 6)),
}


def _trained(module, shape):
    """``module`` with random parameters after two training steps' forwards (BatchNorm's running
    statistics moved off their start)."""
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn_like(parameter))
        for _ in range(2):
            module(torch.randn(*shape) * 3 + 1)
    return module


@pytest.mark.parametrize("name", DROP_IN)
def test_load_state_dict_from_torch_nn(name):
    """torch.nn's state dict loads (strictly: the same names) into derive's module made with the same
    arguments, and back; outputs and gradients, in training and in eval mode (BatchNorm's running
    statistics), are torch's, float32 in and out; the running statistics a training step leaves are torch's."""
    make_theirs, make_ours, shape = DROP_IN[name]
    theirs = _trained(make_theirs(), shape)
    ours = make_ours()
    ours.load_state_dict(theirs.state_dict())
    make_theirs().load_state_dict(ours.state_dict())
    x = torch.randn(*shape) * 2 + 0.5
    for training in (True, False):
        results = []
        for module in (ours.train(training), theirs.train(training)):
            inputs = x.clone().requires_grad_()
            y = module(inputs)
            results.append((y, torch.autograd.grad(y.square().sum(), [inputs, *module.parameters()])))
        (y, grads), (y_torch, grads_torch) = results
        assert y.dtype == torch.float32
        torch.testing.assert_close(y, y_torch)
        for grad, expected in zip(grads, grads_torch, strict=True):
            torch.testing.assert_close(grad, expected)
    for key, value in theirs.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value)


def test_rmsnorm_has_torch_nn_parameters_by_default():
    assert [n for n, _ in dt.RMSNorm(4).named_parameters()] == [n for n, _ in torch.nn.RMSNorm(4).named_parameters()]


def test_batchnorm_checks_its_input_rank():
    with pytest.raises(ValueError, match="BatchNorm2d: expected a 4D input, got 3D"):
        dt.BatchNorm2d(3)(torch.randn(2, 3, 4))


# -- the kernel each device runs ---------------------------------------------------------------------


def test_cpu_tensors_run_numba_without_copies(monkeypatch):
    """On CPU float32 the numba kernel gets the tensors' own memory, and the output tensor is the
    kernel's own array (no copy either way); a dtype numba does not take (bfloat16) runs the
    array_api kernel on the tensors."""
    layernorm = dt.operator("layernorm")
    x, gamma = torch.randn(4, 8), torch.randn(8)
    layernorm(x, gamma)
    numba, seen = layernorm.ops.numba[0], {}
    original = numba.forward

    def spy(*arrays, **params):
        result = original(*arrays, **params)
        seen["in"], seen["out"], seen["saved"] = arrays, *result  # the output, the residuals (mu, sigma)
        return result

    monkeypatch.setattr(numba, "forward", spy)
    y = layernorm(x, gamma)
    assert np.shares_memory(seen["in"][0], x.numpy()) and np.shares_memory(seen["in"][1], gamma.numpy())
    assert np.shares_memory(seen["out"], y.numpy()) and set(seen["saved"]) == {"mu", "sigma"}
    array_api = []
    kernel = layernorm.ops.array_api  # the module the registered ops call (registered once per process)
    monkeypatch.setattr(kernel, "forward", lambda *a, _f=kernel.forward, **k: array_api.append(a) or _f(*a, **k))
    half = layernorm(x.bfloat16(), gamma.bfloat16())
    assert half.dtype == torch.bfloat16 and array_api and isinstance(array_api[0][0], torch.Tensor)
    torch.testing.assert_close(half.float(), y, atol=0.05, rtol=0.05)


def test_numba_writes_into_tensors_torch_allocated(monkeypatch):
    """The forward's output and the vjp's gradients are the tensors handed to the numba kernel as
    ``out=`` (torch.empty, row-major, the result dtype): the kernel writes into torch's memory."""
    layernorm = dt.operator("layernorm")
    x, gamma = torch.randn(4, 8, requires_grad=True), torch.randn(8, requires_grad=True)
    layernorm(x, gamma)
    numba, given = layernorm.ops.numba[0], {}

    def spy(name):
        original = getattr(numba, name)

        def called(*arrays, **keywords):
            given[name] = keywords.get("out")
            return original(*arrays, **keywords)
        return called

    for name in ("forward", "vjp"):
        monkeypatch.setattr(numba, name, spy(name))
    y = layernorm(x, gamma)
    y.backward(torch.randn_like(y))
    assert given["forward"].__array_interface__["data"][0] == y.data_ptr() and y.is_contiguous()
    dx, dgamma, dbeta = given["vjp"]
    assert dbeta is None and dx.__array_interface__["data"][0] == x.grad.data_ptr()
    assert dgamma.__array_interface__["data"][0] == gamma.grad.data_ptr()
