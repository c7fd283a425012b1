"""Plain NumPy forward references, written independently of the engine, with PyTorch's semantics."""

import numpy as np
from scipy.special import erf, expit


def add(a, b):
    return a + b


def sub(a, b):
    return a - b


def mul(a, b):
    return a * b


def div(a, b):
    return a / b


sin, cos, tanh, exp, log = np.sin, np.cos, np.tanh, np.exp, np.log


def relu(x):
    return np.maximum(x, 0.0)


def leaky_relu(x, *, negative_slope=0.01):
    return np.where(x > 0, x, negative_slope * x)


def sigmoid(x):
    return expit(x)


def silu(x):
    return x * sigmoid(x)


def softplus(x):
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def gelu(x, *, approximate="none"):
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + erf(x / np.sqrt(2)))


def reduce_mean(x, *, axis=-1, keepdims=False):
    return x.mean(axis=axis, keepdims=keepdims)


def softmax(x, *, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x, *, axis=-1):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


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


def _affine(y, gamma, beta, shape):
    y = y if gamma is None else y * gamma.reshape(shape)
    return y if beta is None else y + beta.reshape(shape)


def batchnorm(x, gamma=None, beta=None, *, eps=1e-5):
    # torch.nn.functional.batch_norm(training=True): per channel over every other axis
    axes = (0,) + tuple(range(2, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return _affine((x - mean) / np.sqrt(var + eps), gamma, beta, shape)


def group_norm(x, gamma=None, beta=None, *, num_groups, eps=1e-5):
    grouped = x.reshape(x.shape[0], num_groups, -1)
    mean = grouped.mean(axis=-1, keepdims=True)
    var = ((grouped - mean) ** 2).mean(axis=-1, keepdims=True)
    y = ((grouped - mean) / np.sqrt(var + eps)).reshape(x.shape)
    return _affine(y, gamma, beta, (1, -1) + (1,) * (x.ndim - 2))


def matmul(a, b):
    return np.matmul(a, b)


def cross_entropy(logits, target):
    picked = np.take_along_axis(log_softmax(logits), target[..., None], axis=-1)[..., 0]
    return -picked.mean(axis=-1)


def mse_loss(a, b):
    return np.mean((a - b) ** 2)


def scaled_dot_product_attention(q, k, v, *, causal=False):
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if causal:
        rows, cols = np.indices(scores.shape[-2:])
        scores = np.where(cols <= rows, scores, -np.inf)
    return softmax(scores, axis=-1) @ v
