"""Operators from recent papers, written in NumPy as their papers or PyTorch write them: the functions
``derive generate --from papers.py:NAME`` traces (tests/pipeline/test_traced_papers.py compares their
kernels with PyTorch's autograd).  A keyword parameter is a parameter of the operator, or a learnable
scalar input when given a shape (``--shape alpha=()``)."""

import numpy as np
from scipy.special import erf, expit


def mish(x):
    """Mish (Misra 2019): x tanh(softplus(x))."""
    return x * np.tanh(np.log1p(np.exp(x)))


def swiglu(a, b):
    """SwiGLU's gate (Shazeer 2020): silu(a) * b."""
    return a * expit(a) * b


def geglu(a, b):
    """GeGLU's gate (Shazeer 2020): gelu(a) * b, the exact GELU."""
    return 0.5 * a * (1 + erf(a / np.sqrt(2))) * b


def dynamic_tanh(x, gamma, beta, alpha=0.5):
    """Dynamic Tanh (Zhu et al. 2025), the normalisation-free transformer's DyT: gamma tanh(alpha x) + beta."""
    return gamma * np.tanh(alpha * x) + beta


def scalenorm(x, g=1.0, eps=1e-5):
    """ScaleNorm (Nguyen & Salazar 2019): g x / ||x||, the norm over the last axis."""
    norm = np.sqrt(np.sum(x * x, axis=-1, keepdims=True) + eps)
    return g * x / norm


def focal_loss(logits, targets, gamma=2.0):
    """Binary focal loss (Lin et al. 2017) with its focusing exponent gamma: mean of -(1 - p_t)^gamma log p_t."""
    p = expit(logits)
    p_t = np.where(targets > 0.5, p, 1 - p)
    return -np.mean((1 - p_t) ** gamma * np.log(p_t))


def temperature_softmax(x, log_scale=2.66):
    """Softmax with a learnt temperature, learnt as CLIP learns it (Radford et al. 2021): its logarithm,
    softmax(x exp(log_scale)), the maximum subtracted first."""
    z = x * np.exp(log_scale)
    e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def squared_relu(x):
    """Squared ReLU (So et al. 2021, Primer)."""
    return np.maximum(x, 0) ** 2


def snake(x, alpha):
    """Snake (Ziyin et al. 2020; BigVGAN's per-channel alpha): x + sin(alpha x)^2 / alpha."""
    return x + np.sin(alpha * x) ** 2 / alpha


def smooth_l1(a, b, delta=1.0):
    """Smooth L1 loss (Girshick 2015, Fast R-CNN), mean reduction."""
    d = np.abs(a - b)
    return np.mean(np.where(d < delta, 0.5 * d**2 / delta, d - 0.5 * delta))


def soft_cross_entropy(logits, targets):
    """Cross-entropy with soft targets (label smoothing, distillation): mean over the batch."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return -(targets * log_p).sum(axis=-1).mean()


def softcap(x, cap=30.0):
    """Logit soft-capping (Gemma 2, 2024): cap tanh(x / cap)."""
    return cap * np.tanh(x / cap)


def squareplus(x, b=4.0):
    """Squareplus (Barron 2021): (x + sqrt(x^2 + b)) / 2, a softplus made of roots."""
    return (x + np.sqrt(x * x + b)) / 2
