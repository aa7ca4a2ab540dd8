"""Kinship cache: round trip, no pickle, atomic write, key and fingerprint checks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from glimix_cli.errors import InputError
from glimix_cli.io.plink import open_bfile
from glimix_cli.kinship.cache import bfile_fingerprint, load_kinship_cache, save_kinship_cache
from glimix_cli.kinship.grm import kinship_qs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for make_fixtures
from make_fixtures import make_all  # noqa: E402


@pytest.fixture
def fixtures(tmp_path: Path) -> dict[str, Path]:
    return make_all(tmp_path / "fx")


@pytest.fixture
def built(fixtures):
    b = open_bfile(fixtures["good"])
    res = kinship_qs(b)
    fid = b.samples["fid"].to_numpy()
    iid = b.samples["iid"].to_numpy()
    return b, res.QS, fid, iid


def test_roundtrip_without_pickle(tmp_path: Path, built) -> None:
    b, QS, fid, iid = built
    fp = bfile_fingerprint(b, {"maf_min": 0.0, "chrom": None, "range": (1, 2)})
    out = tmp_path / "sub" / "kin.npz"
    save_kinship_cache(out, QS, fid, iid, fp)
    assert sorted(p.name for p in out.parent.iterdir()) == ["kin.npz"]  # temp file renamed
    (Q0, Q1), S0 = load_kinship_cache(out, bfile_fingerprint(b, {"maf_min": 0.0, "chrom": None,
                                                                 "range": [1, 2]}), fid, iid)
    np.testing.assert_array_equal(Q0, QS[0][0])
    np.testing.assert_array_equal(S0, QS[1])
    assert Q1.shape == (len(iid), 0)
    with np.load(out, allow_pickle=False) as z:  # every array loads without pickle
        assert {"Q0", "S0", "n", "fid", "iid", "fingerprint"} <= set(z.files)
        assert all(z[k].dtype != object for k in z.files)
        assert int(z["n"]) == len(iid)
    # IID-only keys
    save_kinship_cache(out, QS, None, iid, fp)
    load_kinship_cache(out, None, None, iid)
    with pytest.raises(InputError, match=r"does not match the samples \(sample 1 is I0 in the "
                                         r"cache, F0:I0 in this run\)"):
        load_kinship_cache(out, None, fid, iid)


def test_mismatches_say_what_differs(tmp_path: Path, built) -> None:
    b, QS, fid, iid = built
    out = tmp_path / "kin.npz"
    fp = bfile_fingerprint(b, {"maf_min": 0.0})
    save_kinship_cache(out, QS, fid, iid, fp)
    rebuild = r" - rebuild it with `glimix kinship \.\.\. --out FILE\.npz`$"
    with pytest.raises(InputError, match=r"kin\.npz: kinship cache does not match the samples "
                                         r"\(built for 11 samples, this run analyses 10\)"
                                         + rebuild):
        load_kinship_cache(out, fp, fid[:10], iid[:10])
    with pytest.raises(InputError, match=r"\(same samples in a different order\)"):
        load_kinship_cache(out, fp, fid[::-1], iid[::-1])
    with pytest.raises(InputError, match=r"kin\.npz: kinship cache was built from other inputs "
                                         r"\(options\.maf_min: cache 0\.0, now 0\.05\)" + rebuild):
        load_kinship_cache(out, bfile_fingerprint(b, {"maf_min": 0.05}), fid, iid)
    os.utime(b.bed, ns=(0, 12345))
    with pytest.raises(InputError, match=r"\(bed_mtime_ns: cache \d+, now 12345\)"):
        load_kinship_cache(out, bfile_fingerprint(b, {"maf_min": 0.0}), fid, iid)
    with pytest.raises(InputError, match=r"\(options\.extra not in cache\)"):
        load_kinship_cache(out, {**fp, "options": {"maf_min": 0.0, "extra": 1}}, fid, iid)


def test_unreadable_files(tmp_path: Path, built) -> None:
    _, QS, fid, iid = built
    with pytest.raises(InputError, match=r"none\.npz: kinship cache not found - rebuild it"):
        load_kinship_cache(tmp_path / "none.npz", None, fid, iid)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match=r"junk\.npz: not a glimix kinship cache \(.*\) - "
                                         r"rebuild it"):
        load_kinship_cache(tmp_path / "junk.npz", None, fid, iid)
    np.savez(tmp_path / "other.npz", Q0=QS[0][0])
    with pytest.raises(InputError, match=r"other\.npz: not a glimix kinship cache \(missing "
                                         r"S0, fid, fingerprint"):
        load_kinship_cache(tmp_path / "other.npz", None, fid, iid)
    np.savez(tmp_path / "pickled.npz", Q0=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputError, match=r"pickled\.npz: not a glimix kinship cache"):
        load_kinship_cache(tmp_path / "pickled.npz", None, fid, iid)
    save_kinship_cache(tmp_path / "v.npz", QS, fid, iid, {})
    with np.load(tmp_path / "v.npz") as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(tmp_path / "v.npz", **{**arrays, "format_version": np.array(99)})
    with pytest.raises(InputError, match=r"v\.npz: kinship cache format 99, this glimix reads "
                                         r"format 1 - rebuild it"):
        load_kinship_cache(tmp_path / "v.npz", None, fid, iid)
    with pytest.raises(ValueError, match=r"do not match 3 samples"):
        save_kinship_cache(tmp_path / "x.npz", QS, None, iid[:3], {})
