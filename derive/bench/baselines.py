"""Hand-written NumPy baselines the generated vjps are measured against (not generated code).

Every baseline has the generated vjp's contract, ``(dy, *inputs, **params) -> one gradient per
input``, so statistics the forward would save (rstd, softmax p) are computed from the inputs,
once.  ``closed_*``: PyTorch's CPU backward formulas written by hand for speed (one reduction
per statistic, row dot products by ``np.einsum``, updates in place on buffers the function
owns).  ``plain_*``: the same formulas written the way they read.  ``naive_*``: the per-row
n x n Jacobian materialised with ``np.einsum``, then contracted with dy (small n only).
"""

from __future__ import annotations

import numpy as np


def _rows(a: np.ndarray) -> np.ndarray:
    """A view with every leading axis merged: (..., n) -> (rows, n)."""
    return a.reshape(-1, a.shape[-1])


def _row_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sum(a * b) over the last axis, kept as a length-1 axis, without an (..., n) temporary."""
    return np.einsum("...i,...i->...", a, b)[..., None]


def _column_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sum(a * b) over every leading axis: the gradient of a per-feature scale."""
    return np.einsum("ij,ij->j", _rows(a), _rows(b))


# -- closed forms, tuned ------------------------------------------------------------------------


def closed_rmsnorm(dy, x, gamma, beta, *, eps=1e-6):
    """rstd = 1/sqrt(mean(x^2) + eps), g = dy*gamma: dx = rstd*(g - xhat*mean(g*xhat))."""
    n = x.shape[-1]
    rstd = 1.0 / np.sqrt(_row_dot(x, x) / n + eps)
    xhat = x * rstd
    g = dy * gamma
    dgamma, dbeta = _column_dot(dy, xhat), _rows(dy).sum(axis=0)
    xhat *= _row_dot(g, xhat) / n
    g -= xhat
    g *= rstd
    return g, dgamma, dbeta


def closed_layernorm(dy, x, gamma, beta, *, eps=1e-5):
    """xhat = (x - mean)*rstd, g = dy*gamma: dx = rstd*(g - mean(g) - xhat*mean(g*xhat))."""
    n = x.shape[-1]
    xhat = x - x.mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(_row_dot(xhat, xhat) / n + eps)
    xhat *= rstd
    g = dy * gamma
    dgamma, dbeta = _column_dot(dy, xhat), _rows(dy).sum(axis=0)
    mean_g = g.mean(axis=-1, keepdims=True)
    xhat *= _row_dot(g, xhat) / n
    g -= xhat
    g -= mean_g
    g *= rstd
    return g, dgamma, dbeta


def _softmax(x: np.ndarray) -> np.ndarray:
    p = x - x.max(axis=-1, keepdims=True)
    np.exp(p, out=p)
    p /= p.sum(axis=-1, keepdims=True)
    return p


def closed_softmax(dy, x, *, axis=-1):
    """p = softmax(x): dx = p*(dy - sum(dy*p))."""
    p = _softmax(x)
    dx = dy - _row_dot(dy, p)
    dx *= p
    return (dx,)


def closed_log_softmax(dy, x, *, axis=-1):
    """p = softmax(x): dx = dy - p*sum(dy)."""
    p = _softmax(x)
    p *= dy.sum(axis=-1, keepdims=True)
    return (np.subtract(dy, p, out=p),)


def _channel_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sum(a * b) over every axis but 1."""
    flat = (a.shape[0], a.shape[1], -1)
    return np.einsum("ncs,ncs->c", a.reshape(flat), b.reshape(flat))


def closed_batchnorm(dy, x, gamma, beta, *, eps=1e-5):
    """Statistics over every axis but 1 (N, C, spatial...): layernorm's formula per channel."""
    axes = (0, *range(2, x.ndim))
    count = x.size // x.shape[1]
    channel = (1, -1) + (1,) * (x.ndim - 2)
    xhat = x - x.mean(axis=axes, keepdims=True)
    rstd = 1.0 / np.sqrt(_channel_dot(xhat, xhat).reshape(channel) / count + eps)
    xhat *= rstd
    dgamma = _channel_dot(dy, xhat)
    dbeta = dy.sum(axis=axes)
    g = dy * gamma.reshape(channel)
    mean_g = (dbeta * gamma).reshape(channel) / count
    xhat *= (dgamma * gamma).reshape(channel) / count
    g -= xhat
    g -= mean_g
    g *= rstd
    return g, dgamma, dbeta


def closed_matmul(dy, a, b):
    """dA = dY B^T, dB = A^T dY (BLAS)."""
    return dy @ np.swapaxes(b, -1, -2), np.swapaxes(a, -1, -2) @ dy


# -- closed forms, plain --------------------------------------------------------------------------


def plain_rmsnorm(dy, x, gamma, beta, *, eps=1e-6):
    rstd = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    xhat = x * rstd
    g = dy * gamma
    dx = rstd * (g - xhat * np.mean(g * xhat, axis=-1, keepdims=True))
    return dx, _rows(dy * xhat).sum(axis=0), _rows(dy).sum(axis=0)


def plain_layernorm(dy, x, gamma, beta, *, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(np.mean((x - mu) ** 2, axis=-1, keepdims=True) + eps)
    xhat = (x - mu) * rstd
    g = dy * gamma
    dx = rstd * (g - g.mean(axis=-1, keepdims=True) - xhat * np.mean(g * xhat, axis=-1, keepdims=True))
    return dx, _rows(dy * xhat).sum(axis=0), _rows(dy).sum(axis=0)


def plain_softmax(dy, x, *, axis=-1):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)
    return (p * (dy - np.sum(dy * p, axis=-1, keepdims=True)),)


def plain_log_softmax(dy, x, *, axis=-1):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)
    return (dy - p * dy.sum(axis=-1, keepdims=True),)


def plain_batchnorm(dy, x, gamma, beta, *, eps=1e-5):
    axes = (0, *range(2, x.ndim))
    channel = (1, -1) + (1,) * (x.ndim - 2)
    mu = x.mean(axis=axes, keepdims=True)
    rstd = 1.0 / np.sqrt(((x - mu) ** 2).mean(axis=axes, keepdims=True) + eps)
    xhat = (x - mu) * rstd
    g = dy * gamma.reshape(channel)
    dx = rstd * (g - g.mean(axis=axes, keepdims=True) - xhat * (g * xhat).mean(axis=axes, keepdims=True))
    return dx, (dy * xhat).sum(axis=axes), dy.sum(axis=axes)


# -- the naive route: materialise the per-row Jacobian ------------------------------------------


def _contract(dy: np.ndarray, jacobian: np.ndarray) -> np.ndarray:
    """dx[b, k] = sum_i dy[b, i] J[b, i, k]."""
    return np.einsum("bi,bik->bk", _rows(dy), jacobian).reshape(dy.shape)


def naive_rmsnorm(dy, x, gamma, beta, *, eps=1e-6):
    """J[b, i, k] = gamma_i (delta_ik / r - x_i x_k / (n r^3))."""
    rows, n = _rows(x), x.shape[-1]
    r = np.sqrt(np.mean(rows * rows, axis=-1) + eps)
    jacobian = np.einsum("i,ik,b->bik", gamma, np.eye(n, dtype=x.dtype), 1 / r)
    jacobian -= np.einsum("i,bi,bk,b->bik", gamma, rows, rows, 1 / (n * r**3))
    xhat = rows / r[:, None]
    return _contract(dy, jacobian), (_rows(dy) * xhat).sum(axis=0), _rows(dy).sum(axis=0)


def naive_layernorm(dy, x, gamma, beta, *, eps=1e-5):
    """J[b, i, k] = gamma_i / sigma (delta_ik - 1/n - xhat_i xhat_k / n)."""
    rows, n = _rows(x), x.shape[-1]
    centred = rows - rows.mean(axis=-1, keepdims=True)
    sigma = np.sqrt(np.mean(centred**2, axis=-1) + eps)
    xhat = centred / sigma[:, None]
    eye = np.eye(n, dtype=x.dtype) - 1 / n
    jacobian = np.einsum("i,ik,b->bik", gamma, eye, 1 / sigma)
    jacobian -= np.einsum("i,bi,bk,b->bik", gamma, xhat, xhat, 1 / (n * sigma))
    return _contract(dy, jacobian), (_rows(dy) * xhat).sum(axis=0), _rows(dy).sum(axis=0)


def naive_softmax(dy, x, *, axis=-1):
    """J[b, i, k] = p_i (delta_ik - p_k)."""
    p = _softmax(_rows(x))
    jacobian = np.einsum("bi,ik->bik", p, np.eye(p.shape[-1], dtype=x.dtype))
    jacobian -= np.einsum("bi,bk->bik", p, p)
    return (_contract(dy, jacobian),)


def naive_log_softmax(dy, x, *, axis=-1):
    """J[b, i, k] = delta_ik - p_k."""
    p = _softmax(_rows(x))
    jacobian = np.broadcast_to(np.eye(p.shape[-1], dtype=x.dtype), (len(p),) + (p.shape[-1],) * 2).copy()
    jacobian -= p[:, None, :]
    return (_contract(dy, jacobian),)
