"""Every local device (issue 24): the per-frame functions, the face locator, a whole reenactment and the evaluation
protocol split their batches over the 8 simulated CPU devices (tests/conftest.py) and give what a 1-device mesh of
the same process gives."""

from __future__ import annotations

import numpy as np

from jaxreenact.common.images import save_png
from jaxreenact.common.mesh import make_mesh
from jaxreenact.data import fake
from jaxreenact.data import images as images_lib
from jaxreenact.data import video as video_lib
from jaxreenact.evaluation import protocol
from jaxreenact.face import pipeline
from jaxreenact.inference import frames, reenactment
from jaxreenact.inference.source import fixed_shapes
from jaxreenact.pose import params as pose
from jaxreenact.pose.deca import fixed_deca_theta
from jaxreenact.weights import load_bundle
from jaxreenact.weights.tiny import face_locator_networks

ONE = make_mesh(1)


def _both(fn):
    """fn() on every local device and on one; checks the first really spans 8."""
    assert frames.current_mesh().size == 8
    many = fn()
    with frames.on_mesh(ONE):
        assert frames.current_mesh().size == 1
        one = fn()
    return many, one


def test_per_frame_functions_on_8_devices_equal_1():
    nets, variables = load_bundle(["generator", "deca", "A"], tiny_seed=0)
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (11, 256, 256, 3), dtype=np.uint8)  # 11 rows: two batches of 8, padded
    theta = np.repeat(fixed_deca_theta(1), 11, 0)
    dp = rng.normal(0, 1, (11, nets.A.input_dim)).astype(np.float32)
    w = rng.normal(0, 0.1, (1, nets.g.n_latent, 512)).astype(np.float32)

    def run():
        p = frames.p_of_crops(nets, variables, pose.VOXCELEB, crops, theta, batch=5)
        return p, frames.render_dp(nets, variables, variables["g"], w, dp, 5)

    (p8, r8), (p1, r1) = _both(run)
    assert p8.shape == (11, pose.VOXCELEB.num_directions) and r8.shape == (11, 256, 256, 3)
    np.testing.assert_allclose(p8, p1, rtol=1e-5, atol=1e-5)
    assert np.abs(r8.astype(int) - r1.astype(int)).max() <= 1
    assert len({r.tobytes() for r in r8}) == 11  # every row its own frame (no padding row leaked)


def test_face_locator_on_8_devices_equals_1(monkeypatch):
    sfd, fan = face_locator_networks(0)
    images = np.random.default_rng(1).integers(0, 256, (3, 40, 64, 3), dtype=np.uint8)
    seen = []

    def boxes(b, s):  # the dense outputs are compared; a fixed detection per image lets FAN run
        seen.append((np.asarray(b), np.asarray(s)))
        return [np.array([[4, 4, 36, 36, 0.999]], np.float32)] * len(b)

    monkeypatch.setattr(pipeline.sfd_lib, "postprocess", boxes)

    def run():
        loc = fixed_shapes(pipeline.FaceLocator(sfd, fan), 4, height_step=32)
        return [r.landmarks for r in loc(images)]

    many, one = _both(run)
    (b8, s8), (b1, s1) = seen  # 8 rows (one per device) and 4 (the fixed batch): the 3 real ones compared
    assert len(b8) == 8 and len(b1) == 4
    np.testing.assert_allclose(b8[:3], b1[:3], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(s8[:3], s1[:3], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.stack(many), np.stack(one))


def test_reenactment_on_8_devices_equals_1(tmp_path):
    rng = np.random.default_rng(2)
    src = tmp_path / "source.png"
    save_png(src, np.repeat(np.repeat(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), 8, 0), 8, 1))
    drv = tmp_path / "driving.mp4"
    video_lib.write_video(drv, np.repeat(np.repeat(rng.integers(0, 256, (5, 6, 8, 3), dtype=np.uint8), 8, 1), 8, 2))
    bundle = load_bundle(["generator", "e4e", "deca", "A"], tiny_seed=0)
    outs = iter([tmp_path / "many", tmp_path / "one"])

    def run():
        out = next(outs)
        opts = reenactment.Options(source=str(src), driving=str(drv), out=str(out), tune=False, batch_size=3,
                                   save_frames=True, tiny=True, progress=False)  # fmt: skip
        reenactment.run(opts, locate=pipeline.FixedLocate(), bundle=bundle)
        return np.stack([images_lib.read_image(p) for p in sorted((out / "frames").glob("*.png"))])

    many, one = _both(run)
    assert many.shape == (5, 256, 256, 3)
    assert np.abs(many.astype(int) - one.astype(int)).max() <= 1


def test_evaluation_on_8_devices_equals_1(tmp_path):
    import configs.eval as eval_config

    root = fake.make_fake_tree(tmp_path / "tree", n_ids=1, n_videos=1, n_frames=5, seed=0)
    workdirs = iter([tmp_path / "many", tmp_path / "one"])

    def run():
        config = eval_config.get_config("tiny")
        config.root, config.eval.batch_size, config.eval.cross = str(root), 3, False
        wd = next(workdirs)
        protocol.evaluate(config, wd, progress=False)
        (npz,) = (wd / "cache").glob("*/self/*.npz")
        with np.load(npz) as z:
            return {k: z[k] for k in ("csim", "lpips", "pose", "feats_reenacted")}

    many, one = _both(run)
    for k in many:
        np.testing.assert_allclose(many[k], one[k], rtol=1e-4, atol=1e-5, err_msg=k)
