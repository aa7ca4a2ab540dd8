"""EP tilted moments of every likelihood against scipy.integrate.quad.

The reference integrates ``exp(f(z) - f(z*))`` with ``f = log p(y|z) + log N(z|m, v)`` and
``z*`` its maximiser found by scipy's bounded scalar minimiser, so it shares nothing with
the adaptive-window code under test.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from scipy.integrate import IntegrationWarning, quad
from scipy.optimize import minimize_scalar

from glimix_cli.model.likelihoods import (
    LIKELIHOODS,
    Bernoulli,
    Binomial,
    Likelihood,
    Poisson,
    Probit,
    make_likelihood,
)

MEANS = [-30.0, -3.0, 0.0, 2.5, 30.0]
VARS = [1e-4, 0.3, 1.0, 50.0, 1e4]


def cases() -> list[Likelihood]:
    return [
        Bernoulli(np.array([0.0, 1.0])),
        Probit(np.array([0.0, 1.0])),
        Binomial(np.array([0.0, 3.0, 1000.0, 517.0]), np.array([1000.0, 10.0, 1000.0, 1000.0])),
        Poisson(np.array([0.0, 1.0, 37.0, 10000.0])),
    ]


def test_every_likelihood_is_covered():
    assert {type(c) for c in cases()} == set(LIKELIHOODS.values())


def reference(lik: Likelihood, i: int, m: float, v: float) -> tuple[float, float, float]:
    idx = np.array([i])

    def f(z: float) -> float:
        return float(lik.logpdf(np.array([z]), idx)[0] - 0.5 * (z - m) ** 2 / v
                     - 0.5 * np.log(2 * np.pi * v))

    # bracket the mode generously: it lies between the cavity mean and the likelihood's
    # own maximiser, both within |z| < 60 for the grid above.
    res = minimize_scalar(lambda z: -f(z), bounds=(-80.0, 80.0), method="bounded",
                          options={"xatol": 1e-12, "maxiter": 2000})
    zs = float(res.x)
    fs = f(zs)
    # scale: step until the density dropped by 50 nats on each side
    lo = hi = zs
    step = 1e-4
    while f(lo) - fs > -50:
        lo -= step
        step *= 1.5
    step = 1e-4
    while f(hi) - fs > -50:
        hi += step
        step *= 1.5

    def g(z: float, k: int) -> float:
        return np.exp(f(z) - fs) * (z - zs) ** k

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IntegrationWarning)
        kw = {"epsabs": 0.0, "epsrel": 1e-13, "limit": 1000, "points": [zs]}
        z0 = quad(g, lo, hi, args=(0,), **kw)[0]
        z1 = quad(g, lo, hi, args=(1,), **kw)[0]
        z2 = quad(g, lo, hi, args=(2,), **kw)[0]
    mean_off = z1 / z0
    return fs + np.log(z0), zs + mean_off, z2 / z0 - mean_off**2


@pytest.mark.parametrize("lik", cases(), ids=lambda c: c.name)
def test_tilted_moments_match_quadrature(lik: Likelihood):
    for m, v in itertools.product(MEANS, VARS):
        tm = lik.tilted_moments(np.full(lik.n, m), np.full(lik.n, v))
        assert np.all(np.isfinite(tm.log_z)) and np.all(np.isfinite(tm.mean))
        assert np.all(tm.var > 0)
        for i in range(lik.n):
            lz, mu, var = reference(lik, i, m, v)
            sd = np.sqrt(var)
            ctx = f"{lik.name} y={lik.y[i]} m={m} v={v}"
            assert tm.log_z[i] == pytest.approx(lz, rel=1e-7, abs=1e-7), ctx
            assert abs(tm.mean[i] - mu) <= 1e-7 * max(abs(mu), sd), ctx
            assert tm.var[i] == pytest.approx(var, rel=1e-6), ctx


def test_probit_closed_form_matches_numeric_integral():
    lik = Probit(np.array([0.0, 1.0, 1.0]))
    m = np.array([-2.0, 0.5, 7.0])
    v = np.array([0.5, 3.0, 100.0])
    exact = lik.tilted_moments(m, v)
    numeric = Likelihood.tilted_moments(lik, m, v)
    np.testing.assert_allclose(exact.log_z, numeric.log_z, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(exact.mean, numeric.mean, rtol=1e-9)
    np.testing.assert_allclose(exact.var, numeric.var, rtol=1e-8)


@pytest.mark.parametrize("lik", cases(), ids=lambda c: c.name)
def test_derivatives_match_finite_differences(lik: Likelihood):
    z = np.linspace(-6, 6, 13)
    for i in range(lik.n):
        idx = np.full(z.shape, i)
        h = 1e-5
        d1 = (lik.logpdf(z + h, idx) - lik.logpdf(z - h, idx)) / (2 * h)
        d2 = (lik.dlogpdf(z + h, idx) - lik.dlogpdf(z - h, idx)) / (2 * h)
        np.testing.assert_allclose(lik.dlogpdf(z, idx), d1, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(lik.d2logpdf(z, idx), d2, rtol=1e-6, atol=1e-6)


def test_too_few_integration_points_is_a_clear_error():
    lik = Bernoulli(np.array([1.0]))
    with pytest.raises(ValueError, match="n_int=5 is too small"):
        lik.tilted_moments(np.zeros(1), np.ones(1), n_int=5)


def test_small_n_int_still_accurate():
    lik = Poisson(np.array([3.0, 0.0]))
    a = lik.tilted_moments(np.array([0.3, 2.0]), np.array([2.0, 5.0]), n_int=64)
    b = lik.tilted_moments(np.array([0.3, 2.0]), np.array([2.0, 5.0]), n_int=2000)
    np.testing.assert_allclose(a.log_z, b.log_z, rtol=1e-8)
    np.testing.assert_allclose(a.var, b.var, rtol=1e-6)


@pytest.mark.parametrize(
    ("spec", "y", "msg"),
    [
        ("bernoulli", [0, 2], "must be 0 or 1"),
        ("poisson", [1, -1], "non-negative integers"),
        ("binomial", [1, 1], "needs trials"),
        ("gamma", [1.0], "unknown likelihood"),
        (("binomial", [2, 2]), [3, 1], "0 <= y <= ntrials"),
        ("probit", [0, np.nan], "NaN"),
    ],
)
def test_bad_outcomes_are_rejected(spec, y, msg):
    with pytest.raises(ValueError, match=msg):
        make_likelihood(np.asarray(y, dtype=float), spec)


def test_names_are_case_insensitive():
    assert isinstance(make_likelihood(np.array([0.0, 1.0]), "Bernoulli"), Bernoulli)
    assert isinstance(make_likelihood(np.array([0.0, 1.0]), ("Binomial", [1, 1])), Binomial)


def test_classic_one_tuples_and_any_capitalisation():
    """The classic API: "a tuple whose first item is the likelihood name"."""
    y = np.array([0.0, 1.0, 1.0])
    for spec, cls in ((("bernoulli",), Bernoulli), (("PROBIT",), Probit),
                      (("Poisson",), Poisson), (["bernoulli"], Bernoulli),
                      (("binomial", [1, 2, 3]), Binomial)):
        assert isinstance(make_likelihood(y, spec), cls), spec
    with pytest.raises(ValueError, match="takes no parameters"):
        make_likelihood(y, ("poisson", 3))
    with pytest.raises(ValueError, match="tuple is empty"):
        make_likelihood(y, ())


@pytest.mark.parametrize("lik", cases(), ids=lambda c: c.name)
def test_log_normaliser_derivatives_match_finite_differences(lik: Likelihood):
    """dlog_z and neg_d2log_z against central differences of log Z in the cavity mean."""
    for m, v in itertools.product([-3.0, 0.0, 2.5], [1e-3, 0.3, 5.0]):
        mm = np.full(lik.n, m)
        vv = np.full(lik.n, v)
        tm = lik.tilted_moments(mm, vv)
        h = 1e-3 * max(np.sqrt(v), 0.05)
        up = lik.tilted_moments(mm + h, vv).log_z
        dn = lik.tilted_moments(mm - h, vv).log_z
        np.testing.assert_allclose(tm.dlog_z, (up - dn) / (2 * h), rtol=1e-5, atol=1e-7)
        d2 = (up - 2 * tm.log_z + dn) / h**2
        np.testing.assert_allclose(tm.neg_d2log_z, -d2, rtol=1e-3, atol=1e-4)
        # and they are consistent with the moments
        np.testing.assert_allclose(tm.mean, mm + vv * tm.dlog_z, rtol=1e-7, atol=1e-9)
        narrow = vv * tm.neg_d2log_z < 0.5  # where v - v^2 b is well conditioned
        np.testing.assert_allclose(tm.var[narrow], (vv - vv**2 * tm.neg_d2log_z)[narrow],
                                   rtol=1e-6)


@pytest.mark.parametrize("lik", cases(), ids=lambda c: c.name)
def test_fused_derivatives_equal_the_separate_ones(lik: Likelihood):
    z = np.linspace(-40, 40, 81)[None, :].repeat(lik.n, axis=0)
    lp, d1, d2 = lik.logpdf_derivs(z, slice(None))
    with np.errstate(over="ignore"):
        np.testing.assert_allclose(lp, lik.logpdf(z, slice(None)), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(d1, lik.dlogpdf(z, slice(None)), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(d2, lik.d2logpdf(z, slice(None)), rtol=1e-12, atol=1e-300)


def test_the_registry_and_the_likelihood_classes_agree():
    """One list of names (glimix_cli.registry) for the CLI, the pipeline and the model."""
    from glimix_cli import registry
    from glimix_cli.model.likelihoods import LIKELIHOODS as CLASSES

    assert tuple(CLASSES) == registry.EP_LIKELIHOODS
    assert registry.LIKELIHOODS == ("normal", *registry.EP_LIKELIHOODS)
    for name, cls in CLASSES.items():
        assert cls.name == name and registry.LINKS[name] == cls.link_name
    assert set(registry.SPA_LIKELIHOODS) <= set(registry.EP_LIKELIHOODS)
    assert set(registry.BINARY_LIKELIHOODS) <= set(registry.SPA_LIKELIHOODS)
    assert set(registry.RESOLVED_TESTS) < set(registry.TESTS)
