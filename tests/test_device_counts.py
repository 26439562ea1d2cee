"""Any device count gives the numbers of one device (issue 16): the global batch is padded to a multiple of the mesh
with rows that weigh 0 in every loss (`common.mesh.Padding`). One training step of each stage on 1 and 8 (synthetic,
mixed) or 1 and 3 (paired) of the simulated devices: the loss, each loss term and the gradient norm agree; the
padding arithmetic for 1-32 devices."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import mixed, paired, synthetic
from jaxreenact.common import mesh
from jaxreenact.common.mesh import batch_padding, masked_mean
from jaxreenact.data.pipeline import host_rows
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
    # Hosts (any count dividing the devices) read disjoint parts of the padded batch that cover it.
    for hosts in [h for h in (1, 2, 4, 8) if devices % h == 0]:
        parts = [host_batches(np.arange(100, 136), 12, p, hosts, padded_size=pad.padded) for p in range(hosts)]
        rows, valid = zip(*(next(it) for it in parts))
        rows, valid = np.concatenate(rows), np.concatenate(valid)
        assert all(host_rows(pad.padded, p, hosts).stop <= pad.padded for p in range(hosts))
        np.testing.assert_array_equal(rows, 100 + src)
        np.testing.assert_array_equal(valid, np.arange(pad.padded) < 12)


def one_step(module, tmp_path, name, devices, **train):
    c = module.get_config("tiny")
    with c.unlocked():
        c.train.steps, c.train.eval_every, c.train.log_every = 1, 0, 1
        c.mesh.data = devices
        c.data.fake_dir = str(tmp_path / "fake")  # one made-up tree and dataset for every run
        for k, v in train.items():
            setattr(c.train, k, v)
    loop.train(c, tmp_path / f"{name}{devices}", build_stage=stages.build_stage, progress=False)
    (rec,) = [json.loads(x) for x in (tmp_path / f"{name}{devices}" / "metrics.jsonl").read_text().splitlines()]
    return rec


def assert_same_numbers(recs, extra=()):
    ref = recs[1]
    for n, rec in recs.items():
        for k in (*KEYS, *extra):
            # atol: float rounding of a sum of landmark distances (224-px units) whose difference is the term
            np.testing.assert_allclose(rec[k], ref[k], rtol=2e-5, atol=2e-6, err_msg=f"{k} on {n} devices")
    assert ref["grad_norm"] > 0 and ref["loss"] > 0


def test_synthetic_batch_12_same_on_1_and_8_devices(tmp_path):
    """The authors' batch 12: 12 rows on 1 device, 16 (4 padded) on 8 (an odd mesh: the paired test's 3)."""
    assert jax.device_count() == 8
    assert_same_numbers({n: one_step(synthetic, tmp_path, "s", n, batch_size=12) for n in (1, 8)})


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
