"""Simulated cohorts and GLMM traits, for tests, benchmarks, validation and the example data.

Like :mod:`numpy.testing`, this is support code, not part of the analysis: nothing in the
CLI or the scan imports it. Pure numpy: no file I/O, no printing. Every function takes a
``numpy.random.Generator``, so a seed makes a result reproducible to the bit on the same
numpy version. A bad argument raises ValueError (a programming error), never
:class:`glimix_cli.errors.InputError`.

Modules
-------
genotypes
    :func:`simulate_genotypes`: nuclear families (Mendelian transmission with crossovers,
    optional half-sibs) plus unrelated samples, from one or several populations, with
    short-range linkage disequilibrium and missing calls.
grm
    :func:`standardised_grm`: the dense GRM the traits' polygenic effect is drawn with.
traits
    :func:`simulate_traits` (quantitative, binary, count and binomial outcomes of one
    latent liability), :func:`simulate_null_binary` (exact number of cases) and
    :func:`effect_for_variance`.

Allele convention: every dosage counts the FIRST allele of the variant table (``a1``), the
allele :func:`glimix_cli.io.plink_write.write_plink1` writes first in the .bim file.
"""

from __future__ import annotations

from glimix_cli.testing.genotypes import (
    SampleTable,
    SimulatedGenotypes,
    VariantTable,
    simulate_genotypes,
)
from glimix_cli.testing.grm import standardised_grm
from glimix_cli.testing.traits import (
    NullBinaryTrait,
    SimulatedTraits,
    effect_for_variance,
    simulate_null_binary,
    simulate_traits,
)

__all__ = [
    "NullBinaryTrait",
    "SampleTable",
    "SimulatedGenotypes",
    "SimulatedTraits",
    "VariantTable",
    "effect_for_variance",
    "simulate_genotypes",
    "simulate_null_binary",
    "simulate_traits",
    "standardised_grm",
]
