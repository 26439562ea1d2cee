"""The real-data stages (`real`, `real_synthetic`, `paired`) on a made-up tree with the `:tiny` configs.

Each stage trains one step from A = 0 (so the reenacted image of step 0 is G(trunc(w_s)), computable outside the
step) and the logged terms of that step are checked against values derived here: which images the identity, pixel
and W-regulariser terms compare, and that the `real` mode's sources are all real frames while the mixed mode's
second half is synthetic (its identity reference is itself). Validation must read the test split, never training
frames; a shape weight of 0 switches the eye and mouth terms off, as upstream.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tiny_checkpoints
from configs import mixed, paired, real
from jaxreenact.common.errors import UserError
from jaxreenact.common.mesh import make_mesh
from jaxreenact.evaluation import metrics
from jaxreenact.latent.render import render
from jaxreenact.models import lpips as lpips_lib
from jaxreenact.training import loop, stages
from jaxreenact.training import real as real_lib
from jaxreenact.weights import load_bundle
from train_helpers import step_metrics


@pytest.fixture(scope="module")
def fake_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fake")  # one made-up train + test tree for every test here


@pytest.fixture(scope="module")
def zero_A(tmp_path_factory):
    _, av = load_bundle(("A",), tiny_seed=0)
    zeros = jax.tree.map(lambda x: np.zeros_like(np.asarray(x)), av["A"])
    return tiny_checkpoints.training_workdir(tmp_path_factory.mktemp("zeroA"), zeros)


def _config(stage, fake_dir, zero_A, validate=False, **loss):
    c = stage.get_config("tiny")
    with c.unlocked():
        c.train.steps = 1
        c.train.eval_every = 1 if validate else 0  # 1: validation at step 0 and at the end (one more compile)
        c.mesh.data = 2
        c.data.fake_dir = str(fake_dir)
        c.train.init_from = str(zero_A)
        for k, v in loss.items():
            setattr(c.loss, k, v)
    return c


def _latent_keys(batches):
    return {np.asarray(w).tobytes() for b in batches for w in np.asarray(b)}


def test_validation_reads_the_test_split_only(fake_dir, zero_A):
    for stage in (real, paired):
        c = _config(stage, fake_dir, zero_A)
        st = stages.build_stage(c, make_mesh(1))
        train = real_lib.open_dataset(c)
        test = real_lib.open_dataset(c, c.data.val_split)
        train_w = _latent_keys([train.read(np.arange(train.num_examples))["latent"]])
        test_w = _latent_keys([test.read(np.arange(test.num_examples))["latent"]])
        key = "latent" if stage is real else "source_latent"
        val_w = _latent_keys([b[key] for b in st.val_data])
        assert len(val_w) == c.eval.num_pairs and val_w <= test_w and not val_w & train_w
        if stage is paired:  # sources and targets are frames of one test video
            vb = st.val_data[0]
            assert not _latent_keys([vb["target_latent"]]) & train_w
            assert np.any(np.asarray(vb["source_latent"]) != np.asarray(vb["target_latent"]))
    bad = _config(paired, fake_dir, zero_A)
    with bad.unlocked():
        bad.data.tfds_dir = str(fake_dir / "tfds")  # a built folder (train, test) without the asked split
        bad.data.val_split = "nope"
    with pytest.raises(UserError, match="--split nope"):
        stages.build_stage(bad, make_mesh(1))


def _step0(c, workdir):
    """(logged metrics of step 0, its global batch, the networks): the batch is what the loop read at step 0 (its
    images uint8, as they travel to the devices)."""
    loop.train(c, workdir, build_stage=stages.build_stage, progress=False)
    st = stages.build_stage(c, make_mesh(c.mesh.data))
    nets, frozen = load_bundle(("generator", "arcface"), tiny_seed=c.seed)
    return step_metrics(workdir), st.batches(0), nets, frozen


def _csim(nets, frozen, a, b):
    return np.asarray(metrics.csim_images(frozen["arcface"], a, b, module=nets.arcface))


def test_real_mode_sources_are_all_real_and_shape_zero_drops_eye_mouth(tmp_path, fake_dir, zero_A):
    c = _config(real, fake_dir, zero_A, validate=True, shape=0.0)
    m, batch, nets, frozen = _step0(c, tmp_path / "run")
    assert not {"loss/shape", "loss/eye", "loss/mouth"} & set(m)
    assert m["loss"] == pytest.approx(10 * m["loss/identity"] + 10 * m["loss/perceptual"], rel=1e-5)
    img_r = render(nets.g, frozen["g"], jnp.asarray(batch["latent"]))  # A = 0: the inversion of each real frame
    want = 1 - _csim(nets, frozen, img_r, real_lib.float_images(batch["image"])).mean()
    assert len(batch["latent"]) == c.train.batch_size
    assert m["loss/identity"] == pytest.approx(float(want), rel=1e-4, abs=1e-6)
    recs = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert '"val/csim"' in recs and '"val/pose_error_deg"' in recs


def test_mixed_mode_half_real_half_synthetic(tmp_path, fake_dir, zero_A):
    c = _config(mixed, fake_dir, zero_A)
    m, batch, nets, frozen = _step0(c, tmp_path / "run")
    assert {"loss/shape", "loss/eye", "loss/mouth", "loss/identity", "loss/perceptual"} <= set(m)
    half = c.train.batch_size // 2
    assert len(batch["latent"]) == half
    img_r = render(nets.g, frozen["g"], jnp.asarray(batch["latent"]))
    # The synthetic half is compared with itself (CSIM 1 at A = 0); the real half with its frames.
    want = (1 - _csim(nets, frozen, img_r, real_lib.float_images(batch["image"]))).sum() / c.train.batch_size
    assert m["loss/identity"] == pytest.approx(float(want), rel=1e-4, abs=1e-6)


def test_paired_terms_compare_with_the_target(tmp_path, fake_dir, zero_A):
    c = _config(paired, fake_dir, zero_A, validate=True, w_reg=0.5)
    m, batch, nets, frozen = _step0(c, tmp_path / "run")
    w_s, w_t = np.asarray(batch["source_latent"]), np.asarray(batch["target_latent"])
    mean = np.asarray(frozen["g"]["buffers"]["mean_latent"]).reshape(1, 1, -1)
    np.testing.assert_allclose(m["loss/w_reg"], np.abs(mean + 0.7 * (w_s - mean) - w_t).mean(), rtol=1e-5)
    img_r = render(nets.g, frozen["g"], jnp.asarray(w_s))
    tgt = real_lib.float_images(batch["target_image"])
    want_id = 1 - _csim(nets, frozen, img_r, tgt).mean()
    assert m["loss/identity"] == pytest.approx(float(want_id), rel=1e-4, abs=1e-6)
    to255 = lpips_lib.range_1_to_255
    want_px = float(jnp.mean(jnp.abs(to255(img_r) - to255(tgt))))
    assert m["loss/pixel"] == pytest.approx(want_px, rel=1e-4)
    terms = {"identity": 10, "perceptual": 10, "shape": 1, "eye": 1, "mouth": 1, "pixel": 1, "w_reg": 0.5}
    assert m["loss"] == pytest.approx(sum(w * m[f"loss/{k}"] for k, w in terms.items()), rel=1e-5)
