"""Any device count and any device order give the numbers of one device (issues 16, 23): the global batch is padded
to a multiple of the mesh with rows that weigh 0 in every loss (`common.mesh.Padding`), and each process reads the
rows its devices hold (`data.pipeline.process_rows`). One training step of each stage on 1 device and on 8
(synthetic, mixed) or 3 (paired) of the simulated devices in a permuted order: the loss, each loss term and the
gradient norm agree, and the synthetic stage's validation (data-parallel, padded) equals one device's; the padding
arithmetic for 1-32 devices; the rows of processes whose devices are interleaved in the mesh."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import mixed, paired, synthetic
from jaxreenact.common import mesh
from jaxreenact.common.mesh import batch_padding, masked_mean
from jaxreenact.data.pipeline import data_sharding, process_rows, to_global
from jaxreenact.data.voxceleb import host_batches
from jaxreenact.training import loop, stages

KEYS = ("loss", "grad_norm", "loss/identity", "loss/perceptual", "loss/shape", "loss/eye", "loss/mouth")


@pytest.mark.parametrize("devices", [1, 2, 3, 4, 8, 16, 32])
def test_padding_is_exact_for_the_authors_batch(devices):
    pad = batch_padding(12, devices)
    assert pad.padded % devices == 0 and 12 <= pad.padded < 12 + devices
    src = pad.source_rows()
    np.testing.assert_array_equal(src[:12], np.arange(12))  # the real rows first, in order
    x = np.random.default_rng(devices).standard_normal((12, 5, 3)).astype(np.float32)
    xp = np.asarray(pad.pad(jnp.asarray(x)))
    np.testing.assert_array_equal(xp, x[src])  # padded rows are copies of real rows: finite, never NaN
    w = pad.weights()
    got = float(masked_mean(jnp.asarray(xp), w))
    np.testing.assert_allclose(got, x.astype(np.float64).mean(), rtol=1e-6, atol=1e-7)
    # The gradient of the masked mean with respect to the real rows equals the unpadded one.
    g = jax.grad(lambda a: masked_mean(pad.pad(a), w))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(g), np.full_like(x, 1 / x.size), rtol=1e-5)
    # Processes (any count dividing the devices) read disjoint rows of the padded batch that cover it.
    for hosts in [h for h in (1, 2, 4, 8) if devices % h == 0]:
        parts = [host_batches(np.arange(100, 136), 12, r, padded_size=pad.padded)
                 for r in np.array_split(np.arange(pad.padded), hosts)]  # fmt: skip
        rows, valid = zip(*(next(it) for it in parts))
        rows, valid = np.concatenate(rows), np.concatenate(valid)
        np.testing.assert_array_equal(rows, 100 + src)
        np.testing.assert_array_equal(valid, np.arange(pad.padded) < 12)


def test_rows_of_processes_whose_devices_are_interleaved():
    """8 devices of 2 processes (devices 0-3 and 4-7) in a mesh that alternates them, as a pod's ring may: a padded
    batch of 16 gives mesh position i rows [2i, 2i + 2), so the first process holds rows 0-1, 4-5, 8-9, 12-13
    (by hand), not rows 0-7; each process reads those, and the global array is the batch in order."""
    devs = jax.devices()
    sharding = data_sharding(mesh.make_mesh(8, order="0,4,1,5,2,6,3,7"))
    first, second = (process_rows(sharding, 16, devices=devs[lo : lo + 4]) for lo in (0, 4))
    np.testing.assert_array_equal(first, [0, 1, 4, 5, 8, 9, 12, 13])
    np.testing.assert_array_equal(second, [2, 3, 6, 7, 10, 11, 14, 15])
    batch = np.arange(100, 116)  # the 16 rows of a global batch (a padded batch of 12: rows 12-15 repeat 0-3)
    per_process = [next(host_batches(batch, 12, r, padded_size=16)) for r in (first, second)]
    np.testing.assert_array_equal(per_process[0][0], [100, 101, 104, 105, 108, 109, 100, 101])
    np.testing.assert_array_equal(per_process[1][1], [True] * 6 + [False] * 2)  # rows 14, 15 are padding
    # Assembled from each process's rows (one process here plays both): every device holds its own rows.
    rows = np.concatenate([first, second])
    local = np.concatenate([per_process[0][0], per_process[1][0]])[np.argsort(rows)]
    g = to_global(local, sharding, np.sort(rows), 16)
    np.testing.assert_array_equal(np.asarray(g), 100 + batch_padding(12, 8).source_rows())


PERMUTED = "5,2,7,0,3,6,1,4"  # the 8 simulated devices in a scrambled mesh order


def one_step(module, tmp_path, name, devices, validate=False, **train):
    c = module.get_config("tiny")
    with c.unlocked():
        c.train.steps, c.train.eval_every, c.train.log_every = 1, int(validate), 1
        c.mesh.data = devices
        c.mesh.device_order = PERMUTED if devices > 1 else ""
        c.data.fake_dir = str(tmp_path / "fake")  # one made-up tree and dataset for every run
        for k, v in train.items():
            setattr(c.train, k, v)
    loop.train(c, tmp_path / f"{name}{devices}", build_stage=stages.build_stage, progress=False)
    *_, rec = [json.loads(x) for x in (tmp_path / f"{name}{devices}" / "metrics.jsonl").read_text().splitlines()]
    return rec


def assert_same_numbers(recs, extra=()):
    ref = recs[1]
    for n, rec in recs.items():
        for k in (*KEYS, *extra):
            # atol: float rounding of a sum of landmark distances (224-px units) whose difference is the term
            np.testing.assert_allclose(rec[k], ref[k], rtol=2e-5, atol=2e-6, err_msg=f"{k} on {n} devices")
    assert ref["grad_norm"] > 0 and ref["loss"] > 0


def test_synthetic_batch_12_same_on_1_and_8_devices(tmp_path):
    """The authors' batch 12: 12 rows on 1 device, 16 (4 padded) on 8 (an odd mesh: the paired test's 3). The
    validation too: 4 pairs per batch (the tiny config), run data-parallel as 8 rows (4 padded) on 8 devices, equal
    to 1 device's."""
    assert jax.device_count() == 8
    recs = {n: one_step(synthetic, tmp_path, "s", n, validate=True, batch_size=12) for n in (1, 8)}
    val = [k for k in recs[1] if k.startswith("val/")]
    assert len(val) == 3
    assert_same_numbers(recs, extra=val)


def test_mixed_batch_12_same_on_1_and_8_devices(tmp_path):
    """6 real + 6 synthetic rows: the real half read as 8 rows (2 padded), the batch as 16, on 8 devices."""
    assert_same_numbers({n: one_step(mixed, tmp_path, "m", n, batch_size=12) for n in (1, 8)})


def test_paired_batch_4_same_on_1_and_3_devices(tmp_path):
    """The paired default batch 4 read as 6 rows on 3 devices; the pixel term too."""
    assert_same_numbers({n: one_step(paired, tmp_path, "p", n) for n in (1, 3)}, extra=("loss/pixel",))


def test_cpu_chunks_computes_the_same_rows(monkeypatch):
    x = jnp.asarray(np.random.default_rng(0).standard_normal((6, 3, 4)), jnp.float32)

    def fn(a):
        return {"sum": a.sum(axis=(1, 2)), "scaled": a * jnp.arange(4.0)}

    want = fn(x)
    monkeypatch.setattr(jax, "local_device_count", lambda: 1)  # as on a one-device CPU host
    jaxpr = str(jax.make_jaxpr(lambda a: mesh.cpu_chunks(fn, a, rows=2))(x))
    assert "scan" in jaxpr  # run 2 rows at a time
    got = jax.jit(lambda a: mesh.cpu_chunks(fn, a, rows=2))(x)
    for k in want:
        np.testing.assert_allclose(np.asarray(got[k]), np.asarray(want[k]), rtol=1e-6)
