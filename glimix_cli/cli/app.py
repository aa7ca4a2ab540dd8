"""The ``glimix`` command: a thin Typer layer over :mod:`glimix_cli.pipeline`.

Options -> a validated config -> one pipeline call -> exit code. Heavy imports happen
inside the commands so that ``glimix --help`` is instant. The options every command
shares live in :mod:`.common`; ``export-ssf``, ``plot`` and ``report`` are defined in
their own modules and registered here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from glimix_cli.cli import cmd_export, cmd_kinship, cmd_pca, cmd_plot
from glimix_cli.cli.common import (
    InputOptions,
    OnceCommand,
    QuietOpt,
    ScanTest,
    ThreadsOpt,
    input_configs,
    input_options,
    limit_threads,
    run,
    trait_outputs,
    usage,
    write_run_log,
)
from glimix_cli.registry import SPA_LIKELIHOODS

app = typer.Typer(
    name="glimix",
    help="Genetic association scans with generalised linear mixed models (EP) on PLINK files.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


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


# -- fit ------------------------------------------------------------------------------------
@app.command(cls=OnceCommand, epilog="Example: glimix fit --bfile example_data/cohort --pheno "
             "example_data/cohort.pheno.tsv --pheno-name binary -l bernoulli --covar "
             "example_data/cohort.covar.tsv --out results/binary")
@input_options
def fit(
    inputs: InputOptions,
    out: Annotated[Path | None, typer.Option("--out", help="Write PREFIX.null.json.")] = None,
    threads: ThreadsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Fit the null GLMM (no variant): EP for non-Normal traits, the LMM for Normal ones."""
    limit_threads(threads)
    cfgs = input_configs(inputs)
    traits = [c.pheno_name for c in cfgs]
    from glimix_cli.cli.console import console_err, print_fit_summary, print_trait_heading
    from glimix_cli.pipeline.run import run_fit_traits

    prefixes = [None] * len(cfgs) if out is None else trait_outputs(out, traits, "fit")
    t0 = time.perf_counter()
    messages: list[str] = []
    outcomes = run(lambda rep: run_fit_traits(cfgs, prefixes, rep), quiet, messages)
    seconds = time.perf_counter() - t0

    def render(c: Any = None) -> None:
        for t, outcome in zip(traits, outcomes, strict=True):
            if len(traits) > 1:
                print_trait_heading(t, c)
            print_fit_summary(outcome, seconds, c)

    if not quiet:
        render()
    if out is not None:
        log = write_run_log(out, "fit", messages, render)
        if not quiet:
            console_err().print(f"[green]wrote[/] {log}")


# -- scan -----------------------------------------------------------------------------------
def _parse_chunk(text: str) -> tuple[int, int]:
    try:
        i_s, n_s = text.split("/")
        i, n = int(i_s), int(n_s)
    except ValueError:
        usage(f"--chunk {text}: expected I/N, e.g. 3/10")
        raise
    if not (n >= 1 and 1 <= i <= n):
        usage(f"--chunk {text}: need 1 <= I <= N")
    return i, n


@app.command(cls=OnceCommand, epilog="Example: glimix scan --bfile example_data/cohort --pheno "
             "example_data/cohort.pheno.tsv --pheno-name quant --covar "
             "example_data/cohort.covar.tsv --out results.tsv")
@input_options
def scan(
    inputs: InputOptions,
    out: Annotated[Path, typer.Option("--out", help="Results TSV (.tsv.gz compresses).")],
    chrom: Annotated[str | None, typer.Option(
        "--chr", "--chrom", help="Only these chromosomes, as plink2's --chr: names and ranges "
        "(1-22, 1-22,X, chr3; 23 is X).")] = None,
    from_bp: Annotated[int | None, typer.Option("--from-bp", min=0)] = None,
    to_bp: Annotated[int | None, typer.Option("--to-bp", min=0)] = None,
    extract: Annotated[Path | None, typer.Option("--extract", exists=True, dir_okay=False,
                                                 help="Only these variant ids.")] = None,
    exclude: Annotated[Path | None, typer.Option(
        "--exclude", exists=True, dir_okay=False,
        help="Leave these variant ids out (plink2 --exclude; after --extract).")] = None,
    maf: Annotated[float, typer.Option("--maf", min=0.0, max=0.5,
                                       help="Minimum minor-allele frequency.")] = 0.0,
    mac: Annotated[float, typer.Option("--mac", min=0.0,
                                       help="Minimum minor-allele count (status low_mac).")] = 5.0,
    max_missing: Annotated[float, typer.Option("--max-missing", min=0.0, max=1.0,
                                               help="Maximum missing-call rate.")] = 1.0,
    min_info: Annotated[float, typer.Option(
        "--min-info", min=0.0, help="--bgen/--pgen: minimum imputation INFO (MaCH R^2 of the "
        "dosages, the info column); status low_info below it.")] = 0.0,
    chunk: Annotated[str, typer.Option("--chunk", help="Run part I of N (HPC arrays).")] = "1/1",
    block_size: Annotated[int | None, typer.Option("--block-size", min=1,
                                                   help="Variants per block.")] = None,
    null: Annotated[Path | None, typer.Option(
        "--null", help="Reuse PREFIX.null.json from glimix fit; with several traits the "
        "PREFIX of fit --out (each trait's PREFIX.TRAIT.null.json).")] = None,
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
    limit_threads(threads)
    cfgs = input_configs(inputs)
    cfg = cfgs[0]
    traits = [c.pheno_name for c in cfgs]
    outs = trait_outputs(out, traits, "scan")
    nulls = _null_files(null, traits)
    from glimix_cli.cli.console import console_err, print_scan_summary, print_trait_heading
    from glimix_cli.pipeline.run import ScanConfig, run_scan_traits

    if (from_bp is not None or to_bp is not None) and chrom is None:
        usage("--from-bp/--to-bp need --chr (as in plink2)")
    if sum(x is not None for x in (dask_scheduler, dask_scheduler_file, dask_local)) > 1:
        usage("--dask-scheduler, --dask-scheduler-file and --dask-local are alternatives: "
              "give one")
    scfg = ScanConfig(chrom=chrom, from_bp=from_bp, to_bp=to_bp, extract=extract,
                      exclude=exclude, maf=maf,
                      mac=mac, max_missing=max_missing, min_info=min_info,
                      chunk=_parse_chunk(chunk),
                      block_size=block_size, null=null, resume=resume,
                      dask_scheduler=dask_scheduler, dask_scheduler_file=dask_scheduler_file,
                      dask_local=dask_local, test=test.value)
    if test.value == "spa" and cfg.likelihood not in SPA_LIKELIHOODS:
        usage(f"--test spa needs a binary or binomial trait (-l "
              f"{', '.join(SPA_LIKELIHOODS[:-1])} or {SPA_LIKELIHOODS[-1]}); got "
              f"-l {cfg.likelihood}")
    messages: list[str] = []
    summaries = run(lambda rep: run_scan_traits(cfgs, scfg, outs, rep, nulls), quiet,
                    messages)

    def render(c: Any = None) -> None:
        for t, summary in zip(traits, summaries, strict=True):
            if len(traits) > 1:
                print_trait_heading(t, c)
            print_scan_summary(summary, c)

    if not quiet:
        render()
    log = write_run_log(out, "scan", messages, render)
    if not quiet:
        console_err().print(f"[green]wrote[/] {log}")


def _null_files(null: Path | None, traits: list[str]) -> list[Path | None]:
    """Each trait's --null file: the file itself for one trait, PREFIX.TRAIT.null.json for
    several (as `glimix fit --out PREFIX` writes them); refused before any work if absent."""
    if null is None:
        return [None] * len(traits)
    files = ([null] if len(traits) == 1
             else [Path(str(p) + ".null.json") for p in trait_outputs(null, traits, "fit")])
    for f in files:
        if not f.is_file():
            usage(f"--null {null}: {f} not found" + (
                " - with several traits give the PREFIX of `glimix fit --out PREFIX`"
                if len(traits) > 1 else ""))
    return files


# -- merge -------------------------------------------------------------------------------------
@app.command(cls=OnceCommand,
             epilog="Example: glimix merge all.tsv.gz part1.tsv.gz part2.tsv.gz part3.tsv.gz")
def merge(
    out: Annotated[Path, typer.Argument(help="Merged output (.tsv or .tsv.gz).")],
    parts: Annotated[list[Path], typer.Argument(help="Chunk outputs of one --chunk I/N run.")],
    quiet: QuietOpt = False,
) -> None:
    """Join the outputs of `glimix scan --chunk 1/N ... N/N` after checking they are complete."""
    from glimix_cli.cli.console import console_err
    from glimix_cli.pipeline.run import run_merge

    info = run(lambda rep: run_merge(out, parts), quiet)
    if not quiet:
        console_err().print(f"[green]merged[/] {info['chunks']} chunks, {info['rows']:,} "
                            f"variants -> {out}")


cmd_export.register(app)
cmd_kinship.register(app)
cmd_pca.register(app)
cmd_plot.register(app)


def main() -> None:
    app()
