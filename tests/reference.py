"""Plain NumPy forward references, written independently of the engine, with PyTorch's semantics."""

import numpy as np


def rmsnorm(x, gamma=None, beta=None, *, eps=1e-6):
    # torch.nn.functional.rms_norm: x * rsqrt(mean(x^2, last axis) + eps) * weight
    y = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    y = y if gamma is None else y * gamma
    return y if beta is None else y + beta


def layernorm(x, gamma=None, beta=None, *, eps=1e-5):
    # torch.nn.functional.layer_norm: biased variance, eps inside the root
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps)
    y = y if gamma is None else y * gamma
    return y if beta is None else y + beta


def softmax(x, *, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def matmul(a, b):
    return np.matmul(a, b)
