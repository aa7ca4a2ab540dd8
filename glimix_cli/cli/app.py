"""The ``glimix`` command: a thin Typer layer over :mod:`glimix_cli.pipeline`.

Options -> a validated config -> one pipeline call -> exit code. Heavy imports happen
inside the commands so that ``glimix --help`` is instant.
"""

from __future__ import annotations

import enum
import time
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="glimix",
    help="Genetic association scans with generalised linear mixed models (EP) on PLINK files.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Likelihood(str, enum.Enum):
    normal = "normal"
    bernoulli = "bernoulli"
    probit = "probit"
    binomial = "binomial"
    poisson = "poisson"


class ScanTest(str, enum.Enum):
    auto = "auto"
    spa = "spa"
    surrogate = "surrogate"


def _version(value: bool) -> None:
    if value:
        from glimix_cli import __version__

        typer.echo(f"glimix {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """glimix: GLMM association scans (fit, scan, kinship, merge)."""


# -- shared option types --------------------------------------------------------------------
ExistingFile = Annotated[Path, typer.Option(exists=True, dir_okay=False, readable=True)]
BfileOpt = Annotated[
    Path,
    typer.Option("--bfile", help="PLINK 1 binary fileset: PREFIX (or PREFIX.bed/.bim/.fam)."),
]
PhenoOpt = Annotated[
    Path,
    typer.Option("--pheno", exists=True, dir_okay=False,
                 help="Phenotype table with a header, keyed by FID IID (or IID)."),
]
PhenoNameOpt = Annotated[
    str | None,
    typer.Option("--pheno-name", help="Trait column (default: the table's only data column)."),
]
LikOpt = Annotated[
    Likelihood, typer.Option("--likelihood", "-l", help="Observation model of the trait.")
]
TrialsOpt = Annotated[
    str | None, typer.Option("--trials-name", help="Column with binomial trial counts.")
]
CovarOpt = Annotated[
    Path | None,
    typer.Option("--covar", exists=True, dir_okay=False, help="Covariate table (FID IID ...)."),
]
CovarNameOpt = Annotated[
    list[str] | None,
    typer.Option("--covar-name", help="Covariate column (repeat; default all columns)."),
]
CovarCatOpt = Annotated[
    list[str] | None,
    typer.Option("--covar-cat", help="Treat this covariate as categorical (repeat)."),
]
MissingOpt = Annotated[
    list[str] | None,
    typer.Option("--missing-code",
                 help="Token read as missing in tables (repeat), in addition to the "
                 "defaults NA nan NaN '' -9."),
]
KinshipOpt = Annotated[
    Path | None,
    typer.Option("--kinship", exists=True, dir_okay=False,
                 help="Precomputed kinship matrix (GEMMA .cXX.txt or with an ID header)."),
]
KinshipCacheOpt = Annotated[
    Path | None,
    typer.Option("--kinship-cache",
                 help="Kinship cache (.npz) from `glimix kinship`; used when it exists."),
]
KinExtractOpt = Annotated[
    Path | None,
    typer.Option("--kinship-extract", exists=True, dir_okay=False,
                 help="Variant ids to build the GRM from (default: all)."),
]
KinMafOpt = Annotated[float, typer.Option("--kinship-maf", min=0.0, max=0.5,
                                          help="MAF floor for GRM variants.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or summary.")]
ThreadsOpt = Annotated[
    int | None,
    typer.Option("--threads", min=1,
                 help="Threads for the linear algebra (BLAS/OpenMP). Default: the library's "
                      "choice, usually every core this process may use. Set it to your job's "
                      "CPU allocation when several jobs share a node."),
]

#: Environment variables read by the BLAS/OpenMP libraries numpy and scipy may load.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def _limit_threads(threads: int | None) -> None:
    """Cap the BLAS/OpenMP thread pools at ``threads``.

    The libraries read their thread count from the environment once, when they load; the
    commands import numpy only after this runs, so setting the variables is enough (and
    covers numpy's and scipy's separate OpenBLAS copies). In a process that has loaded
    numpy already (an in-process caller), it is too late: say so instead.
    """
    if threads is None:
        return
    import os
    import sys

    if "numpy" in sys.modules:
        from glimix_cli.cli.console import console_err

        console_err().print("[yellow]warning:[/] --threads has no effect here: numpy was "
                            "loaded before the option was read (run glimix as a command)")
        return  # (the environment is left alone: it would only reach child processes)
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)


def _input_config(bfile, pheno, pheno_name, likelihood, trials_name, covar, covar_name,
                  covar_cat, missing_code, kinship, kinship_cache, kinship_extract, kinship_maf):
    from glimix_cli.io.tables import DEFAULT_MISSING
    from glimix_cli.pipeline.run import InputConfig

    if kinship is not None and kinship_cache is not None:
        _usage("--kinship and --kinship-cache are alternatives: give one")
    # as plink2's --input-missing-phenotype adds a code: the defaults stay missing
    missing = tuple(dict.fromkeys([*DEFAULT_MISSING, *(missing_code or [])]))
    if pheno_name is None:
        from glimix_cli.cli.console import error
        from glimix_cli.errors import GlimixError
        from glimix_cli.io.tables import sole_trait_column

        other = [trials_name] if trials_name else []
        hint = ""
        if covar is not None and Path(covar).resolve() == Path(pheno).resolve():
            other += [*(covar_name or ()), *(covar_cat or ())]  # one table for both
            hint = " (or name the covariates with --covar-name / --covar-cat)"
        try:
            pheno_name = sole_trait_column(pheno, other, missing, hint)
        except GlimixError as exc:
            error(str(exc))
            raise typer.Exit(exc.exit_code) from None
    return InputConfig(
        bfile=bfile, pheno=pheno, pheno_name=pheno_name, likelihood=likelihood.value,
        trials_name=trials_name, covar=covar, covar_names=tuple(covar_name or ()),
        covar_cat=tuple(covar_cat or ()),
        missing_codes=missing,
        kinship=kinship, kinship_cache=kinship_cache, kinship_extract=kinship_extract,
        kinship_maf=kinship_maf,
    )


def _usage(message: str) -> None:
    from glimix_cli.cli.console import error

    error(message)
    raise typer.Exit(2)


def _run(fn, quiet: bool):
    """Call ``fn(reporter)``; turn glimix errors into one red line and exit code 1."""
    from glimix_cli.cli.console import RichReporter, error
    from glimix_cli.errors import GlimixError

    rep = RichReporter(quiet=quiet)
    try:
        with rep:
            return fn(rep)
    except GlimixError as exc:
        error(str(exc))
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        error("interrupted - no output was finalised (an interrupted scan continues from "
              "its finished blocks: rerun the same command with --resume)")
        raise typer.Exit(130) from None


# -- fit ------------------------------------------------------------------------------------
@app.command(epilog="Example: glimix fit --bfile example_data/cohort --pheno "
             "example_data/cohort.pheno.tsv --pheno-name binary -l bernoulli --covar "
             "example_data/cohort.covar.tsv --out results/binary")
def fit(
    bfile: BfileOpt,
    pheno: PhenoOpt,
    pheno_name: PhenoNameOpt = None,
    likelihood: LikOpt = Likelihood.normal,
    trials_name: TrialsOpt = None,
    covar: CovarOpt = None,
    covar_name: CovarNameOpt = None,
    covar_cat: CovarCatOpt = None,
    missing_code: MissingOpt = None,
    kinship: KinshipOpt = None,
    kinship_cache: KinshipCacheOpt = None,
    kinship_extract: KinExtractOpt = None,
    kinship_maf: KinMafOpt = 0.0,
    out: Annotated[Path | None, typer.Option("--out", help="Write PREFIX.null.json.")] = None,
    threads: ThreadsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Fit the null GLMM (no variant): EP for non-Normal traits, the LMM for Normal ones."""
    _limit_threads(threads)
    cfg = _input_config(bfile, pheno, pheno_name, likelihood, trials_name, covar, covar_name,
                        covar_cat, missing_code, kinship, kinship_cache, kinship_extract,
                        kinship_maf)
    from glimix_cli.cli.console import print_fit_summary
    from glimix_cli.pipeline.run import run_fit

    t0 = time.perf_counter()
    outcome = _run(lambda rep: run_fit(cfg, out, rep), quiet)
    if not quiet:
        print_fit_summary(outcome, time.perf_counter() - t0)


# -- scan -----------------------------------------------------------------------------------
def _parse_chunk(text: str) -> tuple[int, int]:
    try:
        i_s, n_s = text.split("/")
        i, n = int(i_s), int(n_s)
    except ValueError:
        _usage(f"--chunk {text}: expected I/N, e.g. 3/10")
        raise
    if not (n >= 1 and 1 <= i <= n):
        _usage(f"--chunk {text}: need 1 <= I <= N")
    return i, n


@app.command(epilog="Example: glimix scan --bfile example_data/cohort --pheno "
             "example_data/cohort.pheno.tsv --pheno-name quant --covar "
             "example_data/cohort.covar.tsv --out results.tsv")
def scan(
    bfile: BfileOpt,
    pheno: PhenoOpt,
    out: Annotated[Path, typer.Option("--out", help="Results TSV (.tsv.gz compresses).")],
    pheno_name: PhenoNameOpt = None,
    likelihood: LikOpt = Likelihood.normal,
    trials_name: TrialsOpt = None,
    covar: CovarOpt = None,
    covar_name: CovarNameOpt = None,
    covar_cat: CovarCatOpt = None,
    missing_code: MissingOpt = None,
    kinship: KinshipOpt = None,
    kinship_cache: KinshipCacheOpt = None,
    kinship_extract: KinExtractOpt = None,
    kinship_maf: KinMafOpt = 0.0,
    chrom: Annotated[str | None, typer.Option("--chrom", help="Only this chromosome.")] = None,
    from_bp: Annotated[int | None, typer.Option("--from-bp", min=0)] = None,
    to_bp: Annotated[int | None, typer.Option("--to-bp", min=0)] = None,
    extract: Annotated[Path | None, typer.Option("--extract", exists=True, dir_okay=False,
                                                 help="Only these variant ids.")] = None,
    maf: Annotated[float, typer.Option("--maf", min=0.0, max=0.5,
                                       help="Minimum minor-allele frequency.")] = 0.0,
    mac: Annotated[float, typer.Option("--mac", min=0.0,
                                       help="Minimum minor-allele count (status low_mac).")] = 5.0,
    max_missing: Annotated[float, typer.Option("--max-missing", min=0.0, max=1.0,
                                               help="Maximum missing-call rate.")] = 1.0,
    chunk: Annotated[str, typer.Option("--chunk", help="Run part I of N (HPC arrays).")] = "1/1",
    block_size: Annotated[int | None, typer.Option("--block-size", min=1,
                                                   help="Variants per block.")] = None,
    null: Annotated[Path | None, typer.Option("--null", exists=True, dir_okay=False,
                                              help="Reuse PREFIX.null.json from glimix fit.")
                    ] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue OUT.partial left by an interrupted run of this same scan "
        "(checked against its ledger OUT.partial.json).")] = False,
    dask_scheduler: Annotated[str | None, typer.Option(
        "--dask-scheduler", help="Run variant blocks on this Dask scheduler "
        "(tcp://HOST:PORT); needs glimix-cli[dask] and PLINK files the workers share.")
    ] = None,
    dask_scheduler_file: Annotated[Path | None, typer.Option(
        "--dask-scheduler-file", help="Dask scheduler file (dask scheduler "
        "--scheduler-file, dask-jobqueue) instead of an address.")] = None,
    dask_local: Annotated[int | None, typer.Option(
        "--dask-local", min=1, help="Start a local Dask cluster of N worker processes.")
    ] = None,
    test: Annotated[ScanTest, typer.Option(
        "--test", help="p-value: auto = saddlepoint (spa) for bernoulli/probit, surrogate LRT "
        "otherwise; spa (also binomial); surrogate (the fixed-covariance LRT). "
        "See docs/calibrated-test.md.")] = ScanTest.auto,
    threads: ThreadsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Fit the null model (or reuse --null), then test every selected variant."""
    _limit_threads(threads)
    cfg = _input_config(bfile, pheno, pheno_name, likelihood, trials_name, covar, covar_name,
                        covar_cat, missing_code, kinship, kinship_cache, kinship_extract,
                        kinship_maf)
    from glimix_cli.cli.console import print_scan_summary
    from glimix_cli.pipeline.run import ScanConfig, run_scan

    if (from_bp is not None or to_bp is not None) and chrom is None:
        _usage("--from-bp/--to-bp need --chrom (as in plink2)")
    if sum(x is not None for x in (dask_scheduler, dask_scheduler_file, dask_local)) > 1:
        _usage("--dask-scheduler, --dask-scheduler-file and --dask-local are alternatives: "
               "give one")
    scfg = ScanConfig(chrom=chrom, from_bp=from_bp, to_bp=to_bp, extract=extract, maf=maf,
                      mac=mac, max_missing=max_missing, chunk=_parse_chunk(chunk),
                      block_size=block_size, null=null, resume=resume,
                      dask_scheduler=dask_scheduler, dask_scheduler_file=dask_scheduler_file,
                      dask_local=dask_local, test=test.value)
    if test is ScanTest.spa and likelihood.value not in ("bernoulli", "probit", "binomial"):
        _usage(f"--test spa needs a binary or binomial trait (-l bernoulli, probit or "
               f"binomial); got -l {likelihood.value}")
    summary = _run(lambda rep: run_scan(cfg, scfg, out, rep), quiet)
    if not quiet:
        print_scan_summary(summary)


# -- kinship ----------------------------------------------------------------------------------
@app.command(epilog="Example: glimix kinship --bfile example_data/cohort --out cohort.kin.npz")
def kinship(
    bfile: BfileOpt,
    out: Annotated[Path, typer.Option("--out", help="Cache file (.npz).")],
    kinship_extract: KinExtractOpt = None,
    maf: Annotated[float, typer.Option("--maf", min=0.0, max=0.5,
                                       help="MAF floor for GRM variants.")] = 0.0,
    threads: ThreadsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Build the standardised GRM and cache its eigendecomposition for fit and scan."""
    _limit_threads(threads)
    from glimix_cli.cli.console import console_err
    from glimix_cli.pipeline.run import run_kinship

    if out.suffix != ".npz":
        _usage(f"--out {out}: the kinship cache must end in .npz")
    info = _run(lambda rep: run_kinship(bfile, kinship_extract, maf, out, rep), quiet)
    if not quiet:
        console_err().print(
            f"[green]wrote[/] {out}: {info['n_samples']:,} samples, "
            f"{info['n_variants_used']:,} variants, rank {info['rank']:,} "
            f"({info['monomorphic']:,} monomorphic skipped)")


# -- merge -------------------------------------------------------------------------------------
@app.command(epilog="Example: glimix merge all.tsv.gz part1.tsv.gz part2.tsv.gz part3.tsv.gz")
def merge(
    out: Annotated[Path, typer.Argument(help="Merged output (.tsv or .tsv.gz).")],
    parts: Annotated[list[Path], typer.Argument(help="Chunk outputs of one --chunk I/N run.")],
    quiet: QuietOpt = False,
) -> None:
    """Join the outputs of `glimix scan --chunk 1/N ... N/N` after checking they are complete."""
    from glimix_cli.cli.console import console_err
    from glimix_cli.io.results import merge_results

    info = _run(lambda rep: merge_results(out, [str(p) for p in parts]), quiet)
    if not quiet:
        console_err().print(f"[green]merged[/] {info['chunks']} chunks, {info['rows']:,} "
                            f"variants -> {out}")


def main() -> None:
    app()


# Commands defined in their own modules register themselves on ``app`` when imported.
from glimix_cli.cli import cmd_export, cmd_plot  # noqa: E402,F401
