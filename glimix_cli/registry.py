"""The names a user can give: likelihoods and association tests, in one place.

Plain Python (no numpy), so that the CLI's choices, the pipeline's checks and the model's
dispatch all read the same tuples and a new likelihood cannot be half-registered.
"""

from __future__ import annotations

#: Observation models of a trait, in the order the help text lists them.
LIKELIHOODS = ("normal", "bernoulli", "probit", "binomial", "poisson")
#: Likelihoods fitted by Expectation Propagation (all but the closed-form Normal).
EP_LIKELIHOODS = ("bernoulli", "probit", "binomial", "poisson")
#: The link function of each likelihood (the scale of its effect sizes).
LINKS = {"normal": "identity", "bernoulli": "logit", "probit": "probit", "binomial": "logit",
         "poisson": "log"}
#: 0/1 traits and the link of their GLM (the null of an unrelated cohort, the refits).
BINARY_LINKS = {"bernoulli": LINKS["bernoulli"], "probit": LINKS["probit"]}
BINARY_LIKELIHOODS = tuple(BINARY_LINKS)
#: Likelihoods whose outcome has a binomial (Bernoulli) law given the latent: the ones the
#: saddlepoint test applies to.
SPA_LIKELIHOODS = ("bernoulli", "probit", "binomial")
#: What ``--test`` accepts; ``auto`` resolves to one of the others (pipeline.scan).
TESTS = ("auto", "spa", "surrogate")
#: The tests a scan actually runs.
RESOLVED_TESTS = ("spa", "surrogate")


def check_likelihood(name: str) -> str:
    """``name`` if it is a likelihood of :data:`LIKELIHOODS`, else ``ValueError``."""
    if name not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {name!r}; use one of {', '.join(LIKELIHOODS)}")
    return name
