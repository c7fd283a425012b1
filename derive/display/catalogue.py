"""The catalogue's notation table: one letter, one meaning across every operator's document.

``MEANINGS`` says what each model's sizes and named quantities mean; ``LETTERS`` gives each meaning
its one letter.  A document shows a model's name as its meaning's letter (``shown_names``), so the
softmax's normaliser is Z wherever it occurs and S is the spatial size only; the models keep their
own names (their API).
"""

from __future__ import annotations

AXIS = "the length of the axis the operator acts on"
BATCH = "the batch size"
NORMALISER = "the softmax's normaliser, a sum of exponentials"
MEAN = "the mean over the normalised axes"
DEVIATION = "the standard deviation over the normalised axes (with epsilon)"

LETTERS: dict[str, str] = {
    AXIS: "n", BATCH: "N", "the number of channels": "C", "the spatial size (the spatial axes' product)": "S",
    "the number of groups": "G", "the number of channels per group": "D",
    "the rows of a and of the product": "M", "the columns of a, the rows of b": "K",
    "the columns of b and of the product": "R", "the number of classes": "Q",
    "the number of queries": "L", "the number of keys and values": "T", "the query and key width": "E",
    "the value width": "V", NORMALISER: "Z", MEAN: "mu", DEVIATION: "sigma",
    "the root mean square (with epsilon)": "r",
    "the attention weights, softmax(q k^T / sqrt(E)) (a document's own name)": "P",
}
"""Meaning -> the one letter every document shows it as (the notation table)."""

_NORM = {"mu": MEAN, "sigma": DEVIATION}
_CHANNELS = {"N": BATCH, "C": "the number of channels", "S": "the spatial size (the spatial axes' product)"}
MEANINGS: dict[str, dict[str, str]] = {
    "softmax": {"S": NORMALISER}, "log_softmax": {"S": NORMALISER},
    "rmsnorm": {"r": "the root mean square (with epsilon)"}, "layernorm": _NORM,
    "batchnorm": {**_CHANNELS, **_NORM},
    "group_norm": {**_CHANNELS, "G": "the number of groups", "D": "the number of channels per group", **_NORM},
    "matmul": {"M": "the rows of a and of the product", "K": "the columns of a, the rows of b",
               "N": "the columns of b and of the product"},
    "cross_entropy": {"N": BATCH, "C": "the number of classes"},
    "scaled_dot_product_attention": {"L": "the number of queries", "S": "the number of keys and values",
                                     "E": "the query and key width", "V": "the value width", "Z": NORMALISER,
                                     "P": "the attention weights, softmax(q k^T / sqrt(E)) (a document's own name)"},
}
"""Operator -> its model's name for a size or named quantity -> what it means (``n``: ``AXIS`` unless said)."""


def meaning(operator: str, name: str) -> str | None:
    """What ``name`` (a size or named quantity of ``operator``'s model) means, or None if the table
    does not say."""
    said = MEANINGS.get(operator, {})
    return said.get(name) or (AXIS if name == "n" else None)


def shown_names(operator: str, names: set[str]) -> dict[str, str]:
    """The model's names that a document shows as another letter: name -> its meaning's letter."""
    out = {}
    for name in names:
        letter = LETTERS.get(meaning(operator, name) or "")
        if letter is not None and letter != name:
            out[name] = letter
    return out


TAGS: dict[str, str] = {
    "layernorm": "ln", "batchnorm": "bn", "rmsnorm": "rms", "group_norm": "gn", "softmax": "sm",
    "log_softmax": "lsm", "softplus": "sp", "sigmoid": "sig", "matmul": "mm", "leaky_relu": "lrelu",
    "cross_entropy": "ce", "mse_loss": "mse", "reduce_mean": "mean", "scaled_dot_product_attention": "sdpa",
}
"""Operator -> the prefix of its equation numbers, (ln.5): short enough that a number stays on its
equation's line in a 10 pt two-column paper, and one per operator (the others' names are short)."""
