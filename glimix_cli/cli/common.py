"""What every command shares: option types, the model-input options (declared once, for
``fit`` and ``scan``), the thread cap and the run wrapper that turns errors into one line.

Imports nothing heavy: numpy and the pipeline load inside the commands, after
``--threads`` has set the BLAS environment.
"""

from __future__ import annotations

import enum
import functools
import inspect
import re
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from glimix_cli.registry import LIKELIHOODS, TESTS

#: ``--likelihood`` choices, from the registry (a str-Enum, as Typer wants).
Likelihood = enum.Enum("Likelihood", {name: name for name in LIKELIHOODS}, type=str)
#: ``--test`` choices, from the registry.
ScanTest = enum.Enum("ScanTest", {name: name for name in TESTS}, type=str)
#: ``--loco-fit`` choices
LocoFit = enum.Enum("LocoFit", {name: name for name in ("fixed", "full")}, type=str)

# -- shared option types --------------------------------------------------------------------
BfileOpt = Annotated[
    Path,
    typer.Option("--bfile", help="PLINK 1 binary fileset: PREFIX (or PREFIX.bed/.bim/.fam)."),
]
GenoBfileOpt = Annotated[
    Path | None,
    typer.Option("--bfile", help="PLINK 1 binary fileset: PREFIX (or PREFIX.bed/.bim/.fam). "
                 "One of --bfile, --bgen, --pgen."),
]
BgenOpt = Annotated[
    Path | None,
    typer.Option("--bgen", exists=True, dir_okay=False,
                 help="BGEN 1.1-1.3 file (dosages of the second allele; a FILE.bgen.bgi index "
                      "beside it is used). Needs glimix-cli[bgen]."),
]
SampleOpt = Annotated[
    Path | None,
    typer.Option("--sample", exists=True, dir_okay=False,
                 help="Oxford .sample file of --bgen (default: the IDs stored in the .bgen)."),
]
PgenOpt = Annotated[
    Path | None,
    typer.Option("--pgen", help="PLINK 2 fileset PREFIX (.pgen/.pvar[.zst]/.psam): ALT "
                 "dosages, hard calls where none are stored. Needs glimix-cli[pgen]."),
]
KinshipBfileOpt = Annotated[
    Path | None,
    typer.Option("--kinship-bfile",
                 help="Build the kinship from this PLINK 1 fileset (e.g. array genotypes) "
                      "instead of the scanned genotypes; samples matched by FID IID."),
]
PhenoOpt = Annotated[
    Path,
    typer.Option("--pheno", exists=True, dir_okay=False,
                 help="Phenotype table with a header, keyed by FID IID (or IID)."),
]
PhenoNameOpt = Annotated[
    list[str] | None,
    typer.Option("--pheno-name", metavar="NAMES",
                 help="Trait column (default: the table's only data column). "
                 "Several traits in one pass: comma lists and plink2 ranges (a,b,c or t0-t9), "
                 "or the option repeated; --out is then a prefix: PREFIX.TRAIT.tsv.gz per "
                 "trait (fit: PREFIX.TRAIT.null.json)."),
]
AllPhenoOpt = Annotated[
    bool,
    typer.Option("--all-pheno", help="Every data column of --pheno is a trait (as plink2; "
                 "not the --trials-name column, nor the covariates of a shared table)."),
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
    typer.Option("--covar-name",
                 help="Covariate columns: names, comma lists and ranges as plink2 "
                      "(--covar-name PC1-PC10,age); repeat to add. Default: all columns."),
]
CovarColNumsOpt = Annotated[
    str | None,
    typer.Option("--covar-col-nums",
                 help="Covariate columns by number (plink2: 1-based, FID and IID counted), "
                      "e.g. 3-12."),
]
PhenoColNumsOpt = Annotated[
    str | None,
    typer.Option("--pheno-col-nums",
                 help="The trait column by number (plink2: 1-based, FID and IID counted)."),
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
                 help="Precomputed kinship: a matrix (GEMMA .cXX.txt, or with an ID header), "
                      "or a sparse table of relatives: GCTA PREFIX.grm.sp (with PREFIX.grm.id) "
                      "or a KING / plink2 --make-king-table .kin0 (GRM entry = 2 x kinship). "
                      "Samples a sparse table does not list are unrelated."),
]
KinshipCacheOpt = Annotated[
    Path | None,
    typer.Option("--kinship-cache",
                 help="Kinship cache (.npz) from `glimix kinship`, dense or sparse; used "
                      "when it exists."),
]
SparseCutoffOpt = Annotated[
    float | None,
    typer.Option("--sparse-cutoff", min=0.001, max=0.999,
                 help="Use a sparse GRM: keep the pairs whose GRM entry is at least this "
                      "(fastGWA: 0.05; third-degree relatives are 0.125), everyone else "
                      "unrelated. For cohorts too large for a dense kinship."),
]
SparsePcsOpt = Annotated[
    int,
    typer.Option("--sparse-pcs", min=0,
                 help="Principal components projected out of the genotypes before the sparse "
                      "GRM: relatedness beyond ancestry, so that the pairs within an ancestry "
                      "group are not taken for relatives (0: the plain GRM, as GCTA)."),
]
ScreenMarkersOpt = Annotated[
    int | None,
    typer.Option("--screen-markers", min=1,
                 help="Random markers that screen all pairs for the sparse GRM before the "
                      "flagged pairs are computed from every marker (default: (8 / cutoff)^2, "
                      "at least 2,000, within 2 GiB)."),
]
KinExtractOpt = Annotated[
    Path | None,
    typer.Option("--kinship-extract", exists=True, dir_okay=False,
                 help="Variant ids to build the GRM from (default: all)."),
]
KinMafOpt = Annotated[float, typer.Option("--kinship-maf", min=0.0, max=0.5,
                                          help="MAF floor for GRM variants.")]
KeepOpt = Annotated[
    Path | None,
    typer.Option("--keep", exists=True, dir_okay=False,
                 help="Analyse only these samples (plink2 --keep: FID IID, or IID, per line)."),
]
RemoveOpt = Annotated[
    Path | None,
    typer.Option("--remove", exists=True, dir_okay=False,
                 help="Leave these samples out (plink2 --remove; applied after --keep)."),
]
LocoOpt = Annotated[
    bool,
    typer.Option("--loco", help="Leave one chromosome out: test each chromosome's variants "
                 "against the null model refitted on the kinship of the other chromosomes (as "
                 "SAIGE, REGENIE, BOLT-LMM). Dense kinships; a sparse one needs none."),
]
LocoFitOpt = Annotated[
    LocoFit,
    typer.Option("--loco-fit", help="With --loco, the null model of each left-out chromosome: "
                 "'fixed' keeps the whole-genome variance components and refits the effects "
                 "and EP sites on the chromosome's kinship (as SAIGE); 'full' re-estimates "
                 "the variance components too (slower)."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or summary.")]
ThreadsOpt = Annotated[
    int | None,
    typer.Option("--threads", min=1,
                 help="Threads for the linear algebra (BLAS/OpenMP). Default: the library's "
                      "choice, usually every core this process may use. Set it to your job's "
                      "CPU allocation when several jobs share a node."),
]


# -- the model-input options of fit and scan --------------------------------------------------
@dataclass(frozen=True)
class InputOptions:
    """The model-input options as given (``fit`` and ``scan`` share them)."""

    pheno: PhenoOpt
    bfile: GenoBfileOpt = None
    bgen: BgenOpt = None
    sample: SampleOpt = None
    pgen: PgenOpt = None
    kinship_bfile: KinshipBfileOpt = None
    pheno_name: PhenoNameOpt = None
    all_pheno: AllPhenoOpt = False
    pheno_col_nums: PhenoColNumsOpt = None
    likelihood: LikOpt = Likelihood.normal
    trials_name: TrialsOpt = None
    covar: CovarOpt = None
    covar_name: CovarNameOpt = None
    covar_col_nums: CovarColNumsOpt = None
    covar_cat: CovarCatOpt = None
    missing_code: MissingOpt = None
    kinship: KinshipOpt = None
    kinship_cache: KinshipCacheOpt = None
    kinship_extract: KinExtractOpt = None
    kinship_maf: KinMafOpt = 0.0
    sparse_cutoff: SparseCutoffOpt = None
    screen_markers: ScreenMarkersOpt = None
    sparse_pcs: SparsePcsOpt = 10
    keep: KeepOpt = None
    remove: RemoveOpt = None
    loco: LocoOpt = False
    loco_fit: LocoFitOpt = LocoFit.fixed


def input_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command the options of :class:`InputOptions`, in place of its ``inputs``
    parameter; the command receives them as one ``InputOptions``."""
    hints = inspect.get_annotations(InputOptions, eval_str=True)
    given = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=hints[f.name],
                               default=(inspect.Parameter.empty if f.default is MISSING
                                        else f.default))
             for f in fields(InputOptions)]
    own = inspect.signature(fn, eval_str=True).parameters
    if "inputs" not in own:
        raise TypeError(f"{fn.__name__}: @input_options needs an 'inputs' parameter")
    params: list[inspect.Parameter] = []
    for name, p in own.items():
        if name == "inputs":
            params += given
        else:
            params.append(p.replace(kind=inspect.Parameter.KEYWORD_ONLY))
    # required options first, as Python wants them before the defaulted ones
    params.sort(key=lambda p: p.default is not inspect.Parameter.empty)
    names = {f.name for f in fields(InputOptions)}

    @functools.wraps(fn)
    def command(**kwargs: Any) -> Any:
        opts = InputOptions(**{k: kwargs.pop(k) for k in names})
        return fn(inputs=opts, **kwargs)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return command


def input_configs(o: InputOptions) -> list[Any]:
    """The pipeline's ``InputConfig`` of each trait the options name (call after
    :func:`limit_threads`: this imports numpy)."""
    from glimix_cli.pipeline.config import DEFAULT_MISSING

    if o.kinship is not None and o.kinship_cache is not None:
        usage("--kinship and --kinship-cache are alternatives: give one")
    if o.kinship is not None and o.sparse_cutoff is not None:
        usage("--kinship and --sparse-cutoff are alternatives: --sparse-cutoff builds the "
              "sparse GRM from the genotypes")
    if o.screen_markers is not None and o.sparse_cutoff is None:
        usage("--screen-markers needs --sparse-cutoff")
    given = [(k, p) for k, p in (("bed", o.bfile), ("bgen", o.bgen), ("pgen", o.pgen))
             if p is not None]
    if len(given) != 1:
        usage("give the genotypes with one of --bfile, --bgen, --pgen" if not given else
              f"{' and '.join('--' + ('bfile' if k == 'bed' else k) for k, _ in given)} are "
              "alternatives: give one genotype source")
    geno_format, geno_path = given[0]
    if o.sample is not None and geno_format != "bgen":
        usage("--sample names the samples of a --bgen file: drop it, or use --bgen")
    if o.kinship_bfile is not None and o.kinship is not None:
        usage("--kinship and --kinship-bfile are alternatives: --kinship-bfile builds the GRM "
              "from that .bed, --kinship reads a finished one")

    # as plink2's --input-missing-phenotype adds a code: the defaults stay missing
    missing = tuple(dict.fromkeys([*DEFAULT_MISSING, *(o.missing_code or [])]))
    from glimix_cli.pipeline.inputs import resolve_traits

    other = [o.trials_name] if o.trials_name else []
    hint = ""
    if o.covar is not None and Path(o.covar).resolve() == Path(o.pheno).resolve():
        other += [*(o.covar_name or ()), *(o.covar_cat or ())]  # one table for both
        hint = " (or name the covariates with --covar-name / --covar-cat)"
    traits = run(lambda rep: resolve_traits(o.pheno, o.pheno_name, o.pheno_col_nums, other,
                                            missing, hint, o.all_pheno), True)
    if len(traits) > 1 and o.trials_name is not None:
        usage(f"--trials-name {o.trials_name}: one binomial trait per run (the trials belong "
              f"to one trait; got {len(traits)}: {', '.join(traits[:4])}) - name one trait")
    return [_config(o, t, geno_format, geno_path, missing) for t in traits]


def _config(o: InputOptions, trait: str, geno_format: str, geno_path: Path,
            missing: tuple[str, ...]) -> Any:
    from glimix_cli.pipeline.config import InputConfig

    return InputConfig(
        bfile=geno_path, geno_format=geno_format, sample=o.sample,
        kinship_bfile=o.kinship_bfile, pheno=o.pheno, pheno_name=trait,
        likelihood=o.likelihood.value,
        trials_name=o.trials_name, covar=o.covar, covar_names=tuple(o.covar_name or ()),
        covar_col_nums=o.covar_col_nums,
        covar_cat=tuple(o.covar_cat or ()), missing_codes=missing, kinship=o.kinship,
        kinship_cache=o.kinship_cache, kinship_extract=o.kinship_extract,
        kinship_maf=o.kinship_maf, sparse_cutoff=o.sparse_cutoff,
        screen_markers=o.screen_markers, sparse_pcs=o.sparse_pcs, keep=o.keep, remove=o.remove,
        loco=o.loco, loco_fit=o.loco_fit.value,
    )


def trait_outputs(out: Path, traits: list[str], kind: str) -> list[Path]:
    """Each trait's output of ``--out``: the file (scan) or prefix (fit) itself for one
    trait; for several, ``--out`` is a prefix (``.tsv``/``.tsv.gz`` dropped and kept as the
    suffix, ``.tsv.gz`` by default) and the trait's name (characters other than letters,
    digits, ``._-`` as ``_``) goes after it."""
    if len(traits) == 1:
        return [out]
    text, ext = str(out), ""
    if kind == "scan":
        ext = ".tsv.gz"
        for e in (".tsv.gz", ".tsv"):
            if text.endswith(e):
                text, ext = text[: -len(e)], e
                break
    safe = [re.sub(r"[^A-Za-z0-9._-]", "_", t) for t in traits]
    if len(set(safe)) != len(safe):
        usage(f"traits {', '.join(traits)}: two of them give the same file name - rename "
              "the columns")
    return [Path(f"{text}.{t}{ext}") for t in safe]


# -- threads, usage errors, the run wrapper ---------------------------------------------------
#: Environment variables read by the BLAS/OpenMP libraries numpy and scipy may load.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def limit_threads(threads: int | None) -> None:
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


def usage(message: str) -> None:
    """A usage error: one red line, exit code 2 (as Click's own)."""
    from glimix_cli.cli.console import error

    error(message)
    raise typer.Exit(2)


def run(fn: Callable[[Any], Any], quiet: bool, messages: list[str] | None = None) -> Any:
    """Call ``fn(reporter)``; turn glimix errors into one red line and exit code 1.
    ``messages`` (when given) receives the reporter's messages, for the run's log."""
    from glimix_cli.cli.console import RichReporter, error
    from glimix_cli.errors import GlimixError

    rep = RichReporter(quiet=quiet)
    if messages is not None:
        rep.lines = messages
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


#: The command line of the command being run (subcommand and its arguments), for its log.
_ARGS: list[str] = []


class OnceCommand(TyperCommand):
    """A command that refuses an option given twice unless it takes a list: Click keeps
    the last value silently (``--pheno-name t0 --pheno-name t5`` would scan t5 only)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        global _ARGS
        _ARGS = [ctx.info_name or "", *args]
        words = args[:args.index("--")] if "--" in args else args
        for param in self.params:
            # (Typer vendors its own Click: test the kind, not the class)
            if (getattr(param, "param_type_name", "") != "option" or param.multiple
                    or getattr(param, "count", False)):
                continue
            names = [*param.opts, *param.secondary_opts]
            seen = [w.split("=", 1)[0] for w in words
                    if w.split("=", 1)[0] in names]
            if len(seen) > 1:
                usage(f"{' and '.join(dict.fromkeys(seen))} given {len(seen)} times - give "
                      f"{names[0]} once")
        return super().parse_args(ctx, args)


def write_run_log(out: Any, kind: str, messages: list[str], render: Callable[[Any], None]
                  ) -> str:
    """Write ``OUT.log`` for the command being run (see ``console.log_path``)."""
    from glimix_cli.cli.console import log_path, write_log

    path = log_path(str(out), kind)
    write_log(path, list(_ARGS), messages, render)
    return path
