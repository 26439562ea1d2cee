"""`python -m jaxreenact.stats`: the ranges-file layout from generated faces (tiny random networks)."""

import numpy as np
import pytest

from jaxreenact import stats
from jaxreenact.pose import params as pose


def test_stats_writes_a_valid_ranges_file(tmp_path):
    out = tmp_path / "ranges.npy"
    stats.main(["--tiny", "--num", "6", "--batch-size", "4", "--out", str(out)])
    r = np.load(out)
    assert r.shape == (54, 2) and r.dtype == np.float64
    assert np.all(r[:, 0] <= r[:, 1]) and np.all(np.isfinite(r))
    assert np.any(r[:, 0] < r[:, 1])  # six different faces give different parameters
    pose.load_ranges(out)  # readable by the training code (min < max for jaw and expressions)


def test_stats_rejects_bad_numbers(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        stats.main(["--tiny", "--num", "0", "--out", str(tmp_path / "r.npy")])
    assert e.value.code == 2 and "--num" in capsys.readouterr().err


def test_stats_lists_every_missing_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        stats.main(["--generator", str(tmp_path / "no_g"), "--deca", str(tmp_path / "no_deca"),
                    "--out", str(tmp_path / "r.npy")])  # fmt: skip
    err = capsys.readouterr().err
    assert e.value.code == 2 and "no_g" in err and "no_deca" in err
    assert "converters.stylegan2" in err and "converters.deca" in err and "converters.all" in err
