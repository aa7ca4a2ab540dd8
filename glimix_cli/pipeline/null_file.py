"""The null model on disk: ``PREFIX.null.json`` (``glimix fit --out``), written once and
read back by ``glimix scan --null`` without refitting (the EP sites rebuild the scanner)."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import numpy as np

from glimix_cli.errors import InputError
from glimix_cli.io.results import atomic_text_writer
from glimix_cli.model.glmm import GLMMNormal
from glimix_cli.model.spa import spa_null
from glimix_cli.pipeline.config import InputConfig
from glimix_cli.pipeline.inputs import Inputs
from glimix_cli.pipeline.kinship import Kinship, kinship_options
from glimix_cli.pipeline.null import NullModel, normal_scanner
from glimix_cli.registry import BINARY_LINKS, SPA_LIKELIHOODS

NULL_FORMAT = 1


def null_json(inputs: Inputs, kin: Kinship, null: NullModel, cfg: InputConfig,
              loco: dict[str, Any] | None = None) -> dict[str, Any]:
    import numpy
    import scipy

    from glimix_cli import __version__

    return {
        "format": NULL_FORMAT,
        "software": {"glimix": __version__, "numpy": numpy.__version__,
                     "scipy": scipy.__version__, "python": platform.python_version()},
        "inputs": inputs.fingerprint,
        "kinship": {"source": kin.source, "n_variants": kin.n_variants,
                    "options": kinship_options(cfg), "sparse": kin.summary},
        "samples": {"counts": dict(inputs.match.counts),
                    "fid": [str(f) for f in inputs.match.fid],
                    "iid": [str(i) for i in inputs.match.iid]},
        "trait_coding": inputs.trait_coding,
        "covariates_dropped": [list(d) for d in inputs.design.dropped],
        # 0/1 traits: the analysed cases and controls (for GWAS-SSF metadata and reports)
        "case_control": ({"cases": int(np.sum(inputs.y > 0.5)),
                          "controls": int(np.sum(inputs.y <= 0.5))}
                         if null.likelihood in BINARY_LINKS else None),
        "null": null.facts(),
        "sites": {"eta": null.eta, "tau": null.tau},
        **({"loco": loco} if loco is not None else {}),
    }


def write_null_json(path: Path, payload: dict[str, Any]) -> None:
    with atomic_text_writer(path) as fh:
        json.dump(payload, fh, indent=1)
        fh.write("\n")


def null_from_json(path: Path, inputs: Inputs, kin: Kinship, cfg: InputConfig) -> NullModel:
    """Rebuild the null model (and its scanner) from ``PREFIX.null.json`` without refitting."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: not found - run `glimix fit ... --out PREFIX` first") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg}) - rerun glimix fit") from None
    if data.get("format") != NULL_FORMAT or "null" not in data:
        raise InputError(f"{path}: not a glimix null-model file - rerun glimix fit")
    rebuild = "rerun `glimix fit` with these inputs, or drop --null"
    for key in ("pheno", "covar", "pheno_name", "likelihood", "trials_name", "covar_names",
                "covar_cat", "missing_codes", "kinship", "keep", "remove"):
        if data["inputs"].get(key) != inputs.fingerprint.get(key):
            raise InputError(f"{path}: fitted with a different {key.replace('_', '-')} than "
                             f"this run - {rebuild}")
    # the null model depends on the kinship's genotypes (--kinship-bfile, else the scanned;
    # none with a --kinship file, checked above)
    here = inputs.fingerprint.get("kinship_bfile", inputs.fingerprint["bfile"])
    if (inputs.fingerprint["kinship"] is None
            and data["inputs"].get("kinship_bfile", data["inputs"]["bfile"]) != here):
        raise InputError(f"{path}: fitted on other genotype files - {rebuild}")
    if data["kinship"]["options"] != kinship_options(cfg):
        raise InputError(f"{path}: fitted with other kinship options - {rebuild}")
    stored = data["kinship"].get("sparse")
    if stored != kin.summary:
        if stored and kin.summary:
            what = (f"another sparse kinship ({stored.get('pairs')} pairs; this run's "
                    f"{kin.source} has {kin.summary['pairs']})")
        else:
            what = (f"a {'sparse' if stored else 'dense'} kinship, this run has a "
                    f"{'sparse' if kin.sparse else 'dense'} one ({kin.source})")
        raise InputError(f"{path}: fitted with {what} - {rebuild}")
    if data["samples"]["iid"] != [str(i) for i in inputs.match.iid] or data["samples"]["fid"] != [
        str(f) for f in inputs.match.fid
    ]:
        raise InputError(f"{path}: fitted on other samples - {rebuild}")
    f = data["null"]
    if f["covariates"] != inputs.design.names:
        raise InputError(f"{path}: fitted with other covariates - {rebuild}")
    return rebuild_null(f, data["sites"], inputs, kin)


def rebuild_null(f: dict[str, Any], sites: dict[str, Any], inputs: Inputs,
                 kin: Kinship) -> NullModel:
    """A stored null model (its facts ``f`` and EP ``sites``) with its scanner rebuilt on
    ``kin`` (the kinship it was fitted on)."""
    X = inputs.design.X
    spa = None
    if f.get("route", "glmm") == "glm":
        beta = np.asarray(f["beta"], dtype=np.float64)
        fields = {k: f[k] for k in NullModel.__dataclass_fields__ if k in f}
        null = NullModel(**fields)
        null.spa = spa_null(X @ beta, X, f["likelihood"], None, inputs.y)
        return null
    if f["likelihood"] == "normal":
        scanner = normal_scanner(inputs.y, X, kin.K, float(f["delta"]))
    else:
        normal = GLMMNormal(np.asarray(sites["eta"]), np.asarray(sites["tau"]), X, K=kin.K)
        normal.beta = f["beta"]
        normal.scale = float(f["scale"])
        normal.delta = float(f["delta"])
        scanner = normal.get_fixed_scale_scanner()
        if f["likelihood"] in SPA_LIKELIHOODS:
            # the EP posterior mean is the Gaussian conditional mean given the stored sites
            spa = spa_null(normal.posteriori_mean(), X, f["likelihood"], inputs.trials,
                           inputs.y)
    fields = {k: f[k] for k in NullModel.__dataclass_fields__ if k in f}
    null = NullModel(**fields)
    null.scanner = scanner
    null.spa = spa
    return null


def loco_json(models: dict[str, NullModel]) -> dict[str, Any]:
    """The per-chromosome null models of ``glimix fit --loco`` as stored in the null file."""
    return {c: {"null": m.facts(), "sites": {"eta": m.eta, "tau": m.tau}}
            for c, m in models.items()}


def stored_loco(path: Path) -> dict[str, Any] | None:
    """The per-chromosome models of a null file (None when fitted without --loco)."""
    data = json.loads(Path(path).read_text())
    return data.get("loco")
