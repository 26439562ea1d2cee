"""DECA's crop box from S3FD + FAN landmarks under jit (`model.deca_box="landmarks"`) against the host pipeline's
functions on the same (random) weights, on the real photo."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from configs import synthetic
from jaxreenact.common.errors import UserError
from jaxreenact.face import deca_box, deca_crop
from jaxreenact.models import fan as fan_lib
from jaxreenact.models import sfd as sfd_lib
from jaxreenact.pose.deca import fixed_deca_theta
from jaxreenact.training import setup, stages
from jaxreenact.weights import Networks, load_bundle, tiny

PHOTO = pathlib.Path(__file__).parents[1] / "jaxreenact" / "resources" / "examples" / "source_0002775.png"


def _images():
    im = Image.open(PHOTO).convert("RGB")
    w, h = im.size
    s = min(w, h)
    face = np.asarray(im.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2)).resize((256, 256)))
    x = np.stack([face, face[:, ::-1]]).astype(np.float32)
    return x / 127.5 - 1.0


def test_landmark_theta_matches_the_host_pipeline():
    (sm, sv), (fm, fv) = tiny.face_locator_networks(0)
    x = _images()
    fallback = fixed_deca_theta(1)
    fn = jax.jit(lambda x, c: deca_box.landmark_theta((sm, sv), (fm, fv), x, fallback, confidence=c))
    theta, lmk, valid = (np.asarray(a) for a in fn(jnp.asarray(x), -1.0))
    assert valid.all() and theta.shape == (2, 3, 3) and lmk.shape == (2, 68, 2)

    # Host path: the same conversion to [0, 255], S3FD's dense outputs (top anchor), FAN's integer crop, landmarks.
    x255 = np.asarray((np.clip(x, -1, 1) + 1) / (2 + 1e-5) * 255, np.float32)
    boxes, scores = (np.asarray(a) for a in sfd_lib.dense_detections(sm, sv, x255))
    top = boxes[np.arange(2), scores.argmax(1)]
    host = fan_lib.landmarks(fm, fv, x255, top)
    # Corners in float32 under jit vs float64 on the host: a one-pixel shift of the crop is possible, not expected.
    assert np.abs(lmk - host).max() <= 1.0 and np.mean(lmk == host) > 0.95
    np.testing.assert_allclose(theta, deca_crop.crop_matrix(lmk.astype(np.float64)), rtol=1e-5, atol=1e-3)
    # The mirrored image is a different input: its box and theta differ.
    assert not np.allclose(theta[0], theta[1])

    # Batched equals one by one.
    one = np.asarray(fn(jnp.asarray(x[1:]), -1.0)[0])
    np.testing.assert_allclose(one[0], theta[1], rtol=1e-5, atol=1e-4)

    # No confident face (random weights never reach score 1.01): the fixed box, flagged.
    theta_f, _, valid_f = (np.asarray(a) for a in fn(jnp.asarray(x), 1.01))
    assert not valid_f.any()
    np.testing.assert_array_equal(theta_f, np.broadcast_to(fallback, theta_f.shape))


def test_crop_matrix_same_in_numpy_and_jax():
    lmk = np.random.default_rng(0).uniform(40, 210, (3, 68, 2))
    np.testing.assert_allclose(np.asarray(jax.jit(deca_crop.crop_matrix)(jnp.asarray(lmk, jnp.float32))),
                               deca_crop.crop_matrix(lmk), rtol=1e-5, atol=1e-3)  # fmt: skip


def test_training_config_selects_the_landmark_box(tmp_path):
    import pytest

    c = synthetic.get_config("tiny")
    with c.unlocked():
        c.model.deca_box = "landmarks"
    nets, frozen = load_bundle(setup.weight_names(c), tiny_seed=c.seed)
    assert nets.sfd is not None and nets.fan is not None and {"sfd", "fan"} <= set(frozen)
    assert setup.make_setup(c, nets).deca_box == "landmarks"
    with pytest.raises(UserError, match="needs the S3FD and FAN"):
        setup.make_setup(c, Networks(nets.g, nets.deca, nets.arcface, nets.lpips))
    real = synthetic.get_config()
    with real.unlocked():
        real.model.deca_box = "landmarks"
        for n in ("generator", "deca", "arcface", "lpips", "sfd", "fan"):
            setattr(real.weights, n, str(tmp_path / n))
    with pytest.raises(UserError) as e:
        stages.build_stage(real, None)
    assert "converters.sfd" in str(e.value) and "converters.fan" in str(e.value)
    with real.unlocked():
        real.model.deca_box = "boxes"
    with pytest.raises(UserError, match="fixed, landmarks"):
        setup.make_setup(real, nets)
