"""The documents' prose is true for each operator: layout sentences follow its layout, every index is
declared, the numerical section says what the kernel does, and summaries are maths, not ASCII."""

from __future__ import annotations

import re

import pytest
from helpers import LATEX, OPERATORS

from derive.display.latex import DerivationLatexPrinter
from derive.model import registry
from derive.targets.latex.maths_text import maths_text


def body(name: str) -> str:
    return (LATEX / f"{name}-body.tex").read_text()


def section(text: str, title: str) -> str:
    return text.split(rf"\subsection{{{title}}}")[1].split(r"\subsection{")[0]


def test_batch_sentences_only_where_the_batch_axes_are_implicit():
    for name in ("batchnorm", "group_norm"):  # every axis written: N is explicit
        assert "Leading batch dimensions" not in body(name) and "kernel sums" not in body(name), name
        assert "Every axis is written" in body(name)
    for name in ("layernorm", "rmsnorm"):  # batch axes lead and are not written
        assert "Leading batch dimensions broadcast" in body(name)
        assert r"the kernel sums $\bar{\gamma}$ over the batch dimensions" in body(name)
    assert "may have any shape" in body("exp") and "broadcast against each other" in body("mul")
    assert r"\texttt{axis} selects" in body("softmax")


@pytest.mark.parametrize("name", OPERATORS)
def test_every_index_displayed_is_declared(name):
    text = body(name)
    declared = set()
    for letters, _ in re.findall(r"\$([^$]*) \\in \\\{1, \\dots, ([^$]*)\\\}\$", text.split(r"\subsection")[1]):
        declared |= {letter.strip() for letter in letters.split(",")}
    used = set(re.findall(r"\\sum_\{([a-z])=", text))
    assert used <= declared, f"{name}: {sorted(used - declared)} summed over but not declared"


def test_the_numerical_section_says_what_the_kernel_does_and_why():
    assert "subtracts the largest entry" in section(body("softmax"), "Numerical form and conventions")
    assert "overflows float32" in section(body("softmax"), "Numerical form and conventions")
    for name in ("batchnorm", "layernorm", "group_norm"):
        stable = section(body(name), "Numerical form and conventions")
        assert "in two passes" in stable and r"\eqref{eq:" in stable, name
    assert "log1p" in section(body("softplus"), "Numerical form and conventions")
    assert "expit" in section(body("sigmoid"), "Numerical form and conventions")
    assert "largest exponent" in section(body("scaled_dot_product_attention"), "Numerical form and conventions")


@pytest.mark.parametrize("name", ["batchnorm", "layernorm", "rmsnorm", "sigmoid", "softmax", "relu"])
def test_summaries_are_maths(name):
    summary = re.search(r"^\\emph\{(.*)\.\}$", body(name), re.M).group(1)
    assert summary.startswith("$") and "sqrt(" not in summary and "exp(" not in summary, summary


def test_a_summary_is_parsed_never_run_and_falls_back_to_escaped_text():
    model = registry.get("layernorm")
    printer = DerivationLatexPrinter()
    text = maths_text("(x - mean(x)) / sqrt(var(x) + eps) * gamma + beta, over the last axis", model, printer)
    assert text.startswith("$") and r"\sqrt{" in text and r"\epsilon" in text and r"\gamma" in text
    assert text.endswith("$, over the last axis")
    hostile = maths_text("__import__('os').system('echo hi') & 50% q_i {k}", model, printer)
    assert hostile == (r"\_\allowbreak{}\_\allowbreak{}import\_\allowbreak{}\_\allowbreak{}('os').system('echo "
                       r"hi') \& 50\% q\_\allowbreak{}i \{k\}")
    assert maths_text("statistics per channel", model, printer) == "statistics per channel"  # bare words: prose
