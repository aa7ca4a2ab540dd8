"""Small dense linear-algebra helpers: economic eigendecompositions of a kinship, their
validation, and the dense matrix they stand for."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

QSType = tuple[tuple[NDArray[np.float64], NDArray[np.float64]], NDArray[np.float64]]

#: Eigenvalues below ``EIG_RTOL * max eigenvalue`` are treated as zero.
EIG_RTOL = 1e-10


def economic_qs(K: ArrayLike, rtol: float = EIG_RTOL) -> QSType:
    """Economic eigendecomposition of a symmetric positive semi-definite matrix.

    Parameters
    ----------
    K : array_like of float, shape (n, n)
        Symmetric positive semi-definite matrix (e.g. a kinship matrix).
    rtol : float
        Eigenvalues at or below ``rtol * max(eigenvalue)`` count as zero.

    Returns
    -------
    QS : ((Q0, Q1), S0)
        ``Q0`` (n, k) eigenvectors of the k non-zero eigenvalues ``S0`` (k,), in ascending
        order of eigenvalue; ``Q1`` (n, n - k) the eigenvectors of the null space.

    Notes
    -----
    ``K = Q0 @ diag(S0) @ Q0.T`` up to the discarded eigenvalues.

    Examples
    --------
    >>> import numpy as np
    >>> G = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    >>> (Q0, Q1), S0 = economic_qs(G @ G.T)
    >>> Q0.shape, Q1.shape, np.round(S0, 6).tolist()
    ((3, 2), (3, 1), [1.697224, 5.302776])
    """
    K = np.asarray(K, dtype=np.float64)
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"K must be a square matrix; got shape {K.shape}")
    if not np.all(np.isfinite(K)):
        raise ValueError("K contains NaN or infinite values")
    S, Q = np.linalg.eigh((K + K.T) / 2)
    smax = max(float(S.max(initial=0.0)), 0.0)
    ok = S > rtol * smax if smax > 0 else np.zeros(S.shape, dtype=bool)
    return (np.ascontiguousarray(Q[:, ok]), np.ascontiguousarray(Q[:, ~ok])), S[ok].copy()


def economic_qs_linear(
    G: ArrayLike, rtol: float = EIG_RTOL, return_q1: bool = True
) -> QSType:
    """Economic eigendecomposition of ``K = G G^T`` without forming ``K``.

    Parameters
    ----------
    G : array_like of float, shape (n, m)
        Genotype-like matrix, typically standardised and divided by ``sqrt(m)``.
    rtol : float
        Singular values with ``s**2 <= rtol * max(s**2)`` count as zero.
    return_q1 : bool
        When False, ``Q1`` is returned with zero columns (saves n*(n-k) memory). The model
        classes of glimix never need ``Q1``: they use ``I - Q0 Q0^T`` instead.

    Returns
    -------
    QS : ((Q0, Q1), S0)
        As :func:`economic_qs`, with ``S0 = s**2`` from the thin SVD ``G = U diag(s) V^T``.

    Notes
    -----
    Costs O(n m min(n, m)); the rank k is at most ``min(n, m)``, so with fewer variants than
    samples the decomposition is low rank and much cheaper than an n x n ``eigh``.
    """
    G = np.asarray(G, dtype=np.float64)
    if G.ndim != 2:
        raise ValueError(f"G must be a 2-D matrix; got shape {G.shape}")
    n, m = G.shape
    if m > n:
        QS = economic_qs(G @ G.T, rtol=rtol)
        return QS if return_q1 else _drop_q1(QS)
    U, s, _ = np.linalg.svd(G, full_matrices=False)
    S = s**2
    smax = float(S.max(initial=0.0))
    ok = S > rtol * smax if smax > 0 else np.zeros(S.shape, dtype=bool)
    Q0 = U[:, ok]
    order = np.argsort(S[ok], kind="stable")
    Q0 = np.ascontiguousarray(Q0[:, order])
    S0 = S[ok][order].copy()
    if return_q1:
        Q1 = _null_space_complement(Q0)
    else:
        Q1 = np.empty((n, 0))
    return (Q0, Q1), S0


def _drop_q1(QS: QSType) -> QSType:
    (Q0, Q1), S0 = QS
    return (Q0, np.empty((Q0.shape[0], 0))), S0


def _null_space_complement(Q0: NDArray[np.float64]) -> NDArray[np.float64]:
    """Orthonormal basis of the orthogonal complement of the columns of ``Q0``."""
    n, k = Q0.shape
    if k == n:
        return np.empty((n, 0))
    Qfull, _ = np.linalg.qr(Q0, mode="complete")
    return np.ascontiguousarray(Qfull[:, k:])


def check_qs(QS: QSType | None, n: int) -> QSType | None:
    """Validate an economic eigendecomposition against the number of samples."""
    if QS is None:
        return None
    try:
        (Q0, Q1), S0 = QS
    except (TypeError, ValueError) as exc:
        raise ValueError("QS must be ((Q0, Q1), S0) as returned by economic_qs") from exc
    Q0 = np.asarray(Q0, dtype=np.float64)
    S0 = np.asarray(S0, dtype=np.float64).ravel()
    Q1 = np.empty((n, 0)) if Q1 is None else np.asarray(Q1, dtype=np.float64)
    if Q0.ndim != 2 or Q0.shape[0] != n:
        raise ValueError(f"QS: Q0 has shape {Q0.shape}, expected ({n}, k)")
    if S0.shape[0] != Q0.shape[1]:
        raise ValueError(f"QS: S0 has {S0.shape[0]} values but Q0 has {Q0.shape[1]} columns")
    if np.any(S0 < 0) or not np.all(np.isfinite(S0)):
        raise ValueError("QS: eigenvalues S0 must be finite and non-negative")
    return (Q0, Q1), S0


def kinship_from_qs(QS: QSType | None, n: int) -> NDArray[np.float64]:
    """Dense ``K = Q0 diag(S0) Q0^T`` (zeros when ``QS`` is None)."""
    if QS is None:
        return np.zeros((n, n))
    (Q0, _), S0 = QS
    K = (Q0 * S0) @ Q0.T
    return (K + K.T) / 2
