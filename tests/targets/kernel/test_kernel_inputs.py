"""Generated kernels check their inputs: ValueError naming the inputs and shapes, TypeError for bad dtypes.

Driven by the registry; the shape checks that depend on how a layout maps arrays onto the model's
axes are run for the operators whose core axes are simply the trailing axes (layout "last").
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from helpers import OPERATORS
from helpers.kernels import load_kernel, make_inputs, model_of, shape_cases


def case(name: str, rng, kernel_target):
    """The kernel, its model, valid inputs (distinct core sizes, one batch dimension) and keywords."""
    sizes, batch = shape_cases(name)[4]
    made = make_inputs(name, sizes, batch, rng)
    arrays, params = made if isinstance(made, tuple) else (made, {})
    return load_kernel(name, kernel_target), model_of(name), list(arrays), params


def is_index(inp) -> bool:
    return getattr(inp, "domain", "real") == "index"


def layout_last(names) -> list[str]:
    return [name for name in names if model_of(name).layout.kind == "last"]


@pytest.mark.parametrize("name", OPERATORS)
@pytest.mark.parametrize("dtype", [np.int64, np.int32, object, np.complex128])
def test_wrong_dtype_is_a_type_error_naming_the_input(name, dtype, rng, kernel_target):
    kernel, model, inputs, params = case(name, rng, kernel_target)
    for position, inp in enumerate(model.inputs):
        if is_index(inp) and np.dtype(dtype).kind in "iu":
            continue  # integer labels are right for an index input
        bad = list(inputs)
        bad[position] = inputs[position].astype(dtype)
        kind = re.escape(str(np.dtype(dtype)))
        wanted = "pass integer class indices" if is_index(inp) else "pass a floating-point array"
        message = rf"{name}: input '{inp.name}' has dtype {kind}; {wanted}"
        with pytest.raises(TypeError, match=message):
            kernel.forward(*bad, **params)
        with pytest.raises(TypeError, match=message):
            kernel.vjp(np.ones(1), *bad, **params)


@pytest.mark.parametrize("name", OPERATORS)
def test_missing_required_input_is_a_type_error(name, rng, kernel_target):
    kernel, model, inputs, params = case(name, rng, kernel_target)
    position = next(p for p, inp in enumerate(model.inputs) if not inp.optional)
    inputs[position] = None
    with pytest.raises(TypeError, match=rf"input '{model.inputs[position].name}' is required, got None"):
        kernel.forward(*inputs, **params)


@pytest.mark.parametrize("name", layout_last(OPERATORS))
def test_too_few_axes_is_a_value_error(name, rng, kernel_target):
    kernel, model, inputs, params = case(name, rng, kernel_target)
    position = max(range(len(model.inputs)), key=lambda p: len(model.inputs[p].dims))
    inp = model.inputs[position]
    inputs[position] = np.zeros((1,) * (len(inp.dims) - 1))
    shape = re.escape(str(inputs[position].shape))
    with pytest.raises(ValueError, match=rf"input '{inp.name}' has shape {shape}; it needs at least "
                                         rf"{len(inp.dims)} axes"):
        kernel.forward(*inputs, **params)


def shared_axis(name: str):
    """(first input, second input, axis size) for the first core axis two inputs share, or None."""
    inputs = model_of(name).inputs
    for position, first in enumerate(inputs):
        for second in inputs[position + 1:]:
            for dim in first.dims:
                if dim in second.dims:
                    return first.name, second.name, dim
    return None


SHARED = [(name, *shared_axis(name)) for name in layout_last(OPERATORS) if shared_axis(name)]


def test_some_operators_share_an_axis_between_inputs():
    assert len(SHARED) >= 2


@pytest.mark.parametrize("name,first,second,dim", SHARED)
def test_mismatched_axis_between_inputs_names_both_and_the_shapes(name, first, second, dim, rng, kernel_target):
    kernel, model, inputs, params = case(name, rng, kernel_target)
    names = [inp.name for inp in model.inputs]
    position = names.index(second)
    axis = model.input(second).dims.index(dim) - len(model.input(second).dims)
    shape = list(inputs[position].shape)
    shape[axis] += 1
    inputs[position] = np.zeros(shape, dtype=inputs[position].dtype)
    first_shape = re.escape(str(inputs[names.index(first)].shape))
    with pytest.raises(ValueError, match=rf"input '{second}' has shape {re.escape(str(tuple(shape)))} and input "
                                         rf"'{first}' has shape {first_shape}: their axis {dim} differs"):
        kernel.forward(*inputs, **params)


@pytest.mark.parametrize("name", OPERATORS)
def test_wrong_cotangent_shape_is_a_value_error(name, rng, kernel_target):
    kernel, _, inputs, params = case(name, rng, kernel_target)
    y = kernel.forward(*inputs, **params)
    bad = np.ones(y.shape[:-1] + (y.shape[-1] + 1,)) if y.ndim else np.ones(2)
    with pytest.raises(ValueError, match=rf"{name}: cotangent has shape {re.escape(str(bad.shape))}; "
                                         rf"the output has shape {re.escape(str(y.shape))}"):
        kernel.vjp(bad, *inputs, **params)


BATCHED = [name for name in layout_last(OPERATORS) if len(model_of(name).inputs) >= 2]


@pytest.mark.parametrize("name", BATCHED)
def test_batch_dimensions_that_do_not_broadcast(name, rng, kernel_target):
    kernel, model, inputs, params = case(name, rng, kernel_target)
    for position, batch in ((0, 2), (1, 3)):
        core = inputs[position].shape[inputs[position].ndim - len(model.inputs[position].dims):]
        inputs[position] = np.zeros((batch,) + core, dtype=inputs[position].dtype)
    first, second = model.inputs[0].name, model.inputs[1].name
    with pytest.raises(ValueError, match=rf"the leading \(batch\) dimensions of '{first}' \(2,\), "
                                         rf"'{second}' \(3,\).* do not broadcast"):
        kernel.forward(*inputs, **params)


@pytest.mark.parametrize("name", OPERATORS)
def test_tangent_problems_are_value_errors(name, rng, kernel_target):
    kernel, model, inputs, params = case(name, rng, kernel_target)
    short = [None] * (len(inputs) - 1)
    with pytest.raises(ValueError, match=rf"tangents has {len(short)} entries; pass one per input"):
        kernel.jvp(short, *inputs, **params)
    position = [inp.name for inp in model.inputs].index(kernel.DIFFERENTIABLE[0])
    tangents = [None] * len(inputs)
    tangents[position] = np.ones(inputs[position].shape + (1,))
    with pytest.raises(ValueError, match=rf"tangent for '{model.inputs[position].name}' has shape "
                                         rf"{re.escape(str(tangents[position].shape))}; input"):
        kernel.jvp(tangents, *inputs, **params)


@pytest.mark.parametrize("name", OPERATORS)
def test_float16_is_computed_in_float32_and_returned_as_float16(name, rng, kernel_target):
    """float16 in gives float16 out, as close to the float64 result on the same values as float16
    can hold: the kernel computes in float32 inside (float16 alone overflows a sum of 1000 x 100)."""
    kernel, model, inputs, params = case(name, rng, kernel_target)
    half = [a if is_index(inp) else a.astype(np.float16) for a, inp in zip(inputs, model.inputs)]
    wide = [a if is_index(inp) else a.astype(np.float64) for a, inp in zip(half, model.inputs)]
    floats = [p for p, inp in enumerate(model.inputs) if not is_index(inp)]
    y = kernel.forward(*half, **params)
    assert y.dtype == np.float16
    np.testing.assert_allclose(y, kernel.forward(*wide, **params), rtol=4e-3, atol=4e-3)
    cotangent = rng.standard_normal(y.shape).astype(np.float16)
    grads, expected = kernel.vjp(cotangent, *half, **params), kernel.vjp(cotangent.astype(np.float64), *wide, **params)
    for p in floats:
        assert grads[p].dtype == np.float16
        np.testing.assert_allclose(grads[p], expected[p], rtol=1e-2, atol=1e-2, err_msg=f"d{model.inputs[p].name}")
    tangents = [rng.standard_normal(a.shape).astype(np.float16) if p in floats else None for p, a in enumerate(half)]
    tangent = kernel.jvp(tangents, *half, **params)
    assert tangent.dtype == np.float16
    wide_tangents = [None if t is None else t.astype(np.float64) for t in tangents]
    np.testing.assert_allclose(tangent, kernel.jvp(wide_tangents, *wide, **params), rtol=1e-2, atol=1e-2)


def test_float16_sums_that_overflow_float16_stay_finite(kernel_target):
    """The sum of 1000 float16 values of 100 is 1e5, beyond float16's 65504; the mean is not."""
    x = np.full(1000, 100, np.float16)
    assert load_kernel("reduce_mean", kernel_target).forward(x) == np.float16(100)
    x = (100 + np.arange(1000) % 7).astype(np.float16).reshape(2, 500)
    y = load_kernel("layernorm", kernel_target).forward(x)
    assert y.dtype == np.float16 and np.all(np.isfinite(y))
    centred = x.astype(np.float64) - x.astype(np.float64).mean(axis=-1, keepdims=True)
    np.testing.assert_allclose(y, centred / np.sqrt((centred ** 2).mean(axis=-1, keepdims=True) + 1e-5), atol=1e-2)


def empty_axis_cases() -> list[tuple[str, str]]:
    """Every core axis of every operator that has core axes (elementwise ones have none)."""
    return [(name, str(d)) for name in OPERATORS for d in model_of(name).dims()
            if model_of(name).layout.kind != "elementwise"]


@pytest.mark.parametrize("name,axis", empty_axis_cases())
def test_an_empty_core_axis_is_a_value_error_naming_the_input(name, axis, rng, kernel_target):
    """A core axis of length 0 (nothing to normalise, average or contract over) is refused before any
    arithmetic: a ValueError naming the input and its shape, not ZeroDivisionError or NumPy's message."""
    kernel, model = load_kernel(name, kernel_target), model_of(name)
    sizes, batch = shape_cases(name)[4]
    if model.layout.kind in ("channels", "groups") and axis == str(model.dims()[-1]):
        batch = (0,)  # x (N, C, *spatial): the spatial axes make up the model's last axis
    inputs, params = make_inputs(name, {**sizes, axis: 0}, batch, rng)
    if params.get("num_groups") == 0:  # group_norm's G is its num_groups parameter
        message = r"group_norm: num_groups=0 must be a positive integer"
    else:
        message = rf"{name}: input '(\w+)' has shape \(([\d, ]*)\): its axis {axis} has length 0"
    tangents = [None] * len(inputs)
    for call in (lambda: kernel.forward(*inputs, **params), lambda: kernel.vjp(np.ones(1), *inputs, **params),
                 lambda: kernel.jvp(tangents, *inputs, **params)):
        with pytest.raises(ValueError, match=message) as raised:
            call()
        named = re.search(message, str(raised.value))
        if named.groups():
            position = [inp.name for inp in model.inputs].index(named[1])
            assert str(inputs[position].shape) == f"({named[2]})" and 0 in inputs[position].shape


@pytest.mark.parametrize("name", [n for n in OPERATORS if model_of(n).layout.kind == "elementwise"])
def test_elementwise_operators_take_empty_arrays_as_numpy_does(name, rng, kernel_target):
    """Elementwise operators have no core axis: an empty input gives an empty output, like NumPy."""
    kernel, model = load_kernel(name, kernel_target), model_of(name)
    inputs = [np.zeros((2, 0)) for _ in model.inputs]
    assert kernel.forward(*inputs).shape == (2, 0)
    assert all(g.shape == (2, 0) for g in kernel.vjp(np.zeros((2, 0)), *inputs))
    assert kernel.jvp(inputs, *inputs).shape == (2, 0)


@pytest.mark.parametrize("name,param,error,message", [
    ("group_norm", "num_groups", ValueError, r"group_norm: num_groups=True must be a positive integer dividing"),
    ("softmax", "axis", TypeError, r"softmax: axis must be an integer, got True"),
])
def test_an_integer_parameter_takes_a_numpy_integer_and_refuses_a_bool(name, param, error, message, rng,
                                                                      kernel_target):
    """The layouts are one template set for every Python kernel: the parameter a layout reads (the
    groups, the axis) is any integer, NumPy's too, never a bool, in the NumPy kernels as in the Array
    API ones (the NumPy kernels took num_groups=True as one group)."""
    kernel = load_kernel(name, kernel_target)
    sizes, batch = shape_cases(name)[4]
    made = make_inputs(name, sizes, batch, rng)
    inputs, params = made if isinstance(made, tuple) else (made, {})
    given = params.get(param, -1)
    expected = kernel.forward(*inputs, **{**params, param: given})
    np.testing.assert_array_equal(kernel.forward(*inputs, **{**params, param: np.int64(given)}), expected)
    with pytest.raises(error, match=message):
        kernel.forward(*inputs, **{**params, param: True})
