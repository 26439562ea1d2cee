"""`python -m jaxreenact.stats`: the ranges-file layout from generated faces (tiny random networks), checked against
a computation written here: the same z draws, one face at a time, DECA read as training reads it (its default
crop, `config.model.deca_box`), Euler angles from SciPy's rotation matrix, min/max over exactly `--num` faces."""

import jax
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from configs import synthetic
from jaxreenact import stats
from jaxreenact.common.mesh import make_mesh
from jaxreenact.latent.render import render, sample_wplus
from jaxreenact.pose import params as pose
from jaxreenact.training import setup
from jaxreenact.training.ranges import compute_ranges
from jaxreenact.weights import load_bundle


def _euler_deg(aa):
    """(yaw, pitch, roll) of axis-angle rows: yaw = asin(R20), pitch = atan2(R21, R22), roll = atan2(R10, R00)."""
    r = Rotation.from_rotvec(np.asarray(aa, np.float64)).as_matrix()
    yaw = np.arcsin(r[:, 2, 0])
    pitch = np.arctan2(r[:, 2, 1], r[:, 2, 2])
    roll = np.arctan2(r[:, 1, 0], r[:, 0, 0])
    return np.degrees(np.stack([yaw, pitch, roll], 1))


def test_stats_matches_faces_read_one_by_one_as_training_reads_them(tmp_path):
    out = tmp_path / "ranges.npy"
    num, batch, seed = 6, 4, 3
    stats.main(["--tiny", "--num", str(num), "--batch-size", str(batch), "--seed", str(seed), "--out", str(out),
                "--no-progress"])  # fmt: skip
    r = np.load(out)
    assert r.shape == (54, 2) and r.dtype == np.float64
    pose.load_ranges(out)  # readable by the training code (min < max for jaw and expressions)

    config = synthetic.get_config()  # the default training config: its DECA crop rule
    nets, frozen = load_bundle(setup.weight_names(config), tiny_seed=0)
    s = setup.make_setup(config, nets)
    read = jax.jit(lambda img: setup.deca_codes(s, frozen, img))
    rows = []
    for i in range(2):  # the program's draws: batch i from fold_in(key(seed), i), z [batch, style_dim]
        z = jax.random.normal(jax.random.fold_in(jax.random.key(seed), i), (batch, nets.g.style_dim))
        img = render(nets.g, frozen["g"], sample_wplus(nets.g, frozen["g"], z), 0.7)
        for j in range(batch):
            c = jax.tree.map(np.asarray, read(img[j : j + 1]))
            rows.append(np.r_[_euler_deg(c["pose"][:, :3])[0], c["pose"][0, 3], c["exp"][0]])
    rows = np.array(rows)
    want = np.stack([rows[:num].min(0), rows[:num].max(0)], 1)
    err = np.abs(r - want)
    # The tiny networks' faces differ little (spreads down to ~1e-5), so compare within each row's spread.
    assert np.all(err <= 1e-3 * np.ptp(want, 1, keepdims=True) + 1e-7)
    assert np.all(want[:, 0] < want[:, 1])  # six different faces give different parameters
    # The faces past --num (the rest of the last batch) are not counted: they would change some row here.
    every = np.stack([rows.min(0), rows.max(0)], 1)
    assert np.any(np.abs(every - want) > 1e-2 * np.ptp(want, 1, keepdims=True))


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


def test_stats_on_8_devices_equals_1():
    """The batches split over the 8 simulated devices (tests/conftest.py), 5 rows padded to 8: the same ranges as
    a 1-device mesh, where nothing is padded."""
    config = synthetic.get_config()
    nets, frozen = load_bundle(setup.weight_names(config), tiny_seed=0)
    assert len(jax.local_devices()) == 8
    many = compute_ranges(nets, frozen, 7, seed=1, batch=5, progress=False)
    one = compute_ranges(nets, frozen, 7, seed=1, batch=5, progress=False, mesh=make_mesh(1))
    assert np.all(one[:, 0] < one[:, 1])
    np.testing.assert_allclose(many, one, rtol=1e-5, atol=1e-6)
