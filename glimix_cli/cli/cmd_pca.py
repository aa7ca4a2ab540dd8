"""``glimix pca``: principal components for ``--covar`` (registered by ``cli.app``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from glimix_cli.cli.common import (
    BfileOpt,
    KeepOpt,
    OnceCommand,
    QuietOpt,
    RemoveOpt,
    ThreadsOpt,
    limit_threads,
    run,
)

EPILOG = ("Example: glimix pca --bfile example_data/cohort -k 10 --out cohort.eigenvec, then "
          "glimix scan ... --covar cohort.eigenvec")


def register(app: typer.Typer) -> None:
    app.command("pca", cls=OnceCommand, epilog=EPILOG)(pca)


def pca(
    bfile: BfileOpt,
    out: Annotated[Path, typer.Option(
        "--out", help="PREFIX.eigenvec (plink2's format: #FID IID PC1 ... PCk); the "
        "eigenvalues go to PREFIX.eigenval.")],
    k: Annotated[int, typer.Option("-k", "--pcs", min=1,
                                   help="Number of principal components.")] = 10,
    extract: Annotated[Path | None, typer.Option(
        "--extract", exists=True, dir_okay=False,
        help="Variant ids to use (e.g. LD-pruned with plink2 --indep-pairwise); default all."
    )] = None,
    maf: Annotated[float, typer.Option("--maf", min=0.0, max=0.5,
                                       help="MAF floor for the variants used.")] = 0.01,
    keep: KeepOpt = None,
    remove: RemoveOpt = None,
    iterations: Annotated[int, typer.Option(
        "--iterations", min=0, help="Subspace iterations (each one more pass over the "
        "genotypes; more give more accurate trailing PCs).")] = 4,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random start.")] = 1,
    threads: ThreadsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Principal components of the genotypes (streamed randomised SVD), as plink2 --pca."""
    limit_threads(threads)
    from glimix_cli.cli.console import console_err
    from glimix_cli.pipeline.pca import run_pca

    info = run(lambda rep: run_pca(bfile, k, out, rep, extract, maf, keep, remove,
                                   iterations, seed), quiet)
    if not quiet:
        top = ", ".join(f"{v:.4g}" for v in info["eigenvalues"][:5])
        console_err().print(
            f"[green]wrote[/] {out} and {info['eigenval']}: {info['k']} PCs of "
            f"{info['n_samples']:,} samples from {info['n_variants_used']:,} variants "
            f"(eigenvalues {top}{', ...' if info['k'] > 5 else ''})")
