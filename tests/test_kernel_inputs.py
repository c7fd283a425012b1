"""Generated kernels check their inputs: ValueError naming the inputs and shapes, TypeError for non-floats."""

from __future__ import annotations

import re

import numpy as np
import pytest

from derive import registry

from conftest import OPERATORS, load_kernel, make_inputs, shape_cases


def case(name: str, rng):
    kernel, model = load_kernel(name), registry.get(name)
    sizes, batch = shape_cases(name)[4]  # distinct core sizes, one batch dimension
    return kernel, model, sizes, make_inputs(name, sizes, batch, rng)


@pytest.mark.parametrize("name", OPERATORS)
@pytest.mark.parametrize("dtype", [np.int64, np.int32, object, np.complex128])
def test_non_floating_input_is_a_type_error_naming_it(name, dtype, rng):
    kernel, model, _, inputs = case(name, rng)
    for position, inp in enumerate(model.inputs):
        bad = list(inputs)
        bad[position] = inputs[position].astype(dtype)
        kind = re.escape(str(np.dtype(dtype)))
        message = rf"{name}: input '{inp.name}' has dtype {kind}; pass a floating-point array"
        for call in (lambda: kernel.forward(*bad), lambda: kernel.vjp(np.ones(1), *bad)):
            with pytest.raises(TypeError, match=message):
                call()


@pytest.mark.parametrize("name", OPERATORS)
def test_missing_required_input_is_a_type_error(name, rng):
    kernel, model, _, inputs = case(name, rng)
    required = [p for p, inp in enumerate(model.inputs) if not inp.optional]
    bad = list(inputs)
    bad[required[0]] = None
    with pytest.raises(TypeError, match=rf"input '{model.inputs[required[0]].name}' is required, got None"):
        kernel.forward(*bad)


@pytest.mark.parametrize("name", [n for n in OPERATORS if any(i.dims for i in registry.get(n).inputs)])
def test_too_few_axes_is_a_value_error(name, rng):
    kernel, model, _, inputs = case(name, rng)
    position = max(range(len(model.inputs)), key=lambda p: len(model.inputs[p].dims))
    inp = model.inputs[position]
    bad = list(inputs)
    bad[position] = np.zeros((1,) * (len(inp.dims) - 1))
    shape = re.escape(str(bad[position].shape))
    if model.layout.kind == "axis":  # the axis parameter is checked first
        expected = rf"axis -1 is out of range for input '{inp.name}' of shape {shape}"
    else:
        expected = rf"input '{inp.name}' has shape {shape}; it needs at least {len(inp.dims)} axes"
    with pytest.raises(ValueError, match=expected):
        kernel.forward(*bad)


def shared_axis(name: str):
    """(first input, second input, axis size) for the first core axis two inputs share, or None."""
    inputs = registry.get(name).inputs
    for position, first in enumerate(inputs):
        for second in inputs[position + 1:]:
            for dim in first.dims:
                if dim in second.dims:
                    return first.name, second.name, dim
    return None


SHARED = [(name, *shared_axis(name)) for name in OPERATORS if shared_axis(name)]


def test_some_operators_share_an_axis_between_inputs():
    assert len(SHARED) >= 2


@pytest.mark.parametrize("name,first,second,dim", SHARED)
def test_mismatched_axis_between_inputs_names_both_and_the_shapes(name, first, second, dim, rng):
    kernel, model, sizes, inputs = case(name, rng)
    position = [inp.name for inp in model.inputs].index(second)
    axis = model.input(second).dims.index(dim) - len(model.input(second).dims)
    shape = list(inputs[position].shape)
    shape[axis] += 1
    bad = list(inputs)
    bad[position] = np.zeros(shape)
    first_shape = re.escape(str(inputs[[i.name for i in model.inputs].index(first)].shape))
    with pytest.raises(ValueError, match=rf"input '{second}' has shape {re.escape(str(tuple(shape)))} and input "
                                         rf"'{first}' has shape {first_shape}: their axis {dim} differs"):
        kernel.forward(*bad)


@pytest.mark.parametrize("name", OPERATORS)
def test_wrong_cotangent_shape_is_a_value_error(name, rng):
    kernel, _, _, inputs = case(name, rng)
    y = kernel.forward(*inputs)
    bad = np.ones(y.shape[:-1] + (y.shape[-1] + 1,)) if y.ndim else np.ones(2)
    with pytest.raises(ValueError, match=rf"{name}: cotangent has shape {re.escape(str(bad.shape))}; "
                                         rf"the output has shape {re.escape(str(y.shape))}"):
        kernel.vjp(bad, *inputs)


@pytest.mark.parametrize("name", OPERATORS)
def test_batch_dimensions_that_do_not_broadcast(name, rng):
    kernel, model, sizes, _ = case(name, rng)
    inputs = make_inputs(name, sizes, (2,), rng)
    inputs[0] = rng.standard_normal((2,) + tuple(sizes[str(d)] for d in model.inputs[0].dims))
    if len(inputs) == 1:  # one input: the cotangent's batch must match instead
        cotangent = np.ones((3,) + kernel.forward(*inputs).shape[1:])
        with pytest.raises(ValueError, match=r"cotangent has shape \(3, "):
            kernel.vjp(cotangent, *inputs)
        return
    inputs[1] = rng.standard_normal((3,) + tuple(sizes[str(d)] for d in model.inputs[1].dims))
    names = f"'{model.inputs[0].name}' \\(2,\\), '{model.inputs[1].name}' \\(3,\\)"
    with pytest.raises(ValueError, match=rf"the leading \(batch\) dimensions of {names}.* do not broadcast"):
        kernel.forward(*inputs)


@pytest.mark.parametrize("name", OPERATORS)
def test_tangent_problems_are_value_errors(name, rng):
    kernel, model, _, inputs = case(name, rng)
    short = [inputs[0]] if len(inputs) > 1 else []
    with pytest.raises(ValueError, match=rf"tangents has {len(short)} entries; pass one per input"):
        kernel.jvp(short, *inputs)
    tangents = [None] * len(inputs)
    tangents[0] = np.ones(inputs[0].shape + (1,))
    with pytest.raises(ValueError, match=rf"tangent for '{model.inputs[0].name}' has shape"):
        kernel.jvp(tangents, *inputs)
