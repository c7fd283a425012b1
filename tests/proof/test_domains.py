"""Domains (issue 28): an input or parameter declares where it lives (``model/domains.py``); every
sampler draws inside it, the kernels' docstrings and the documents state it, and a NaN, an inf or
a complex value at a sample point is an ``UndefinedError`` naming the part and the declaration, never
agreement.  The focal loss of ``tests/models/`` (probabilities and soft targets in [0, 1], gamma a
parameter used as an exponent) is the user's model."""

from __future__ import annotations

import random

import numpy as np
import pytest
import sympy as sp
import torch
from helpers import MODELS
from helpers.commands import one_error, snapshot

import derive
from derive.calculus.concrete import random_point
from derive.cli import main
from derive.errors import ModelError
from derive.model import Input, OperatorModel, index, size
from derive.proof.kernel import input_values

DOMAINS = [("positive", lambda v: v > 0), ("nonnegative", lambda v: v >= 0), ("nonzero", lambda v: v != 0),
           (sp.Interval(0, 1), lambda v: (0 < v) & (v < 1)), (sp.Interval.open(-1, 0), lambda v: (-1 < v) & (v < 0)),
           (sp.Interval(2, sp.oo), lambda v: v > 2), (sp.Range(0, 4), lambda v: np.isin(v, [0, 1, 2, 3]))]


@pytest.mark.parametrize("domain,inside", DOMAINS, ids=[str(d) for d, _ in DOMAINS])
def test_every_sampler_draws_inside_the_domain(domain, inside):
    inp = Input("p", (size("n"),), domain=domain)
    assert inside(input_values(inp, (50, 4), {}, np.random.default_rng(0))).all()  # the kernel proof, the twin
    entries = [sp.Symbol(f"p_{k}") for k in range(50)]
    point = random_point(entries, random.Random(0), where={"p": domain})  # the equality sampler
    assert inside(np.array([float(v) for v in point.values()])).all()


def test_a_simplex_is_a_probability_vector_along_its_last_axis():
    values = input_values(Input("p", (size("n"),), domain="simplex"), (6, 5), {}, np.random.default_rng(0))
    assert (values > 0).all() and np.allclose(values.sum(axis=-1), 1.0)


def test_a_domain_that_is_not_one_is_a_model_error():
    n = size("n")
    i = index("i", n)
    x = Input("x", (n,), domain="probability")
    with pytest.raises(ModelError, match="domain 'probability' is not one of"):
        derive.derive(OperatorModel(name="bad", summary="s", category="c", inputs=(x,), output_indices=(i,),
                                    output=x[i]))


@pytest.fixture(scope="module")
def focal_files():
    return derive.render(derive.load(MODELS / "focal_loss.py"))  # every target, each proved first


def test_focal_loss_with_gamma_an_exponent_matches_torch(focal_files, tmp_path, rng):
    path = tmp_path / "focal_loss.py"
    path.write_text(focal_files["numpy/focal_loss.py"], encoding="utf-8")
    kernel = derive.load_kernel(path)
    p, t = rng.uniform(0.01, 0.99, (3, 7)), rng.uniform(0, 1, (3, 7))
    tp = torch.tensor(p, requires_grad=True)
    p_t = tp * torch.tensor(t) + (1 - tp) * (1 - torch.tensor(t))
    expected = -(1 - p_t) ** 2.5 * torch.log(p_t)
    np.testing.assert_allclose(kernel.forward(p, t, gamma=2.5), expected.detach().numpy(), rtol=1e-12)
    cotangent = rng.standard_normal(p.shape)
    expected.backward(torch.tensor(cotangent))
    dp, dt = kernel.vjp(cotangent, p, t, gamma=2.5)
    np.testing.assert_allclose(dp, tp.grad.numpy(), rtol=1e-10)
    assert dt is None


def test_the_kernels_and_the_document_state_the_domains(focal_files):
    assert "p in [0, 1]; t in [0, 1]; gamma in [0, 5]" in focal_files["numpy/focal_loss.py"]
    assert "each entry in [0, 1]" in focal_files["latex/focal_loss-body.tex"]


def test_a_model_undefined_at_its_samples_is_one_error_line_naming_the_declaration(tmp_path, capsys):
    """The focal loss without its domains: p and t drawn from N(0, 1) make (1 - p_t)^gamma complex or NaN."""
    model = tmp_path / "focal.py"
    model.write_text((MODELS / "focal_loss.py").read_text(encoding="utf-8")
                     .replace(", domain=sp.Interval(0, 1)", "").replace(", domain=sp.Interval(0, 5)", ""),
                     encoding="utf-8")
    out = tmp_path / "out"
    assert main(["generate", "--model", str(model), "--out", str(out), "-q"]) == 2
    error = one_error(capsys)
    assert "undefined at a sample point" in error and "domain=" in error, error
    named = error.split("(it depends on ")[1].split(")")[0].split(", ")
    assert {"p", "t"} & set(named) or "gamma" in named, error  # the inputs or parameter to declare
    assert snapshot(tmp_path) == {"focal.py": model.read_bytes()}
