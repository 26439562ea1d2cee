"""`python -m jaxreenact.invert`: latents for every good frame, bad frames reported, resumable, dataset-ready."""

import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreenact import invert
from jaxreenact.common.errors import UserError
from jaxreenact.common.images import from_uint8
from jaxreenact.common.mesh import batch_sharded, local_mesh
from jaxreenact.data import fake, voxceleb
from jaxreenact.data import images as images_lib
from jaxreenact.inference import frames as frames_lib
from jaxreenact.inference import inversion
from jaxreenact.weights import load_bundle


@pytest.fixture(scope="module")
def models():
    return load_bundle(("e4e", "generator"), tiny_seed=0)


@pytest.fixture()
def tree(tmp_path):
    root = fake.make_fake_tree(tmp_path / "tree", n_ids=1, n_videos=2, n_frames=3, image_size=64)
    for d in root.glob("*/*/inversion"):
        shutil.rmtree(d)  # a freshly preprocessed tree: frames only
    bad = root / "id00000" / "vid_0001" / "frames_cropped" / "000001.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return root, bad


def test_invert_tree_writes_latents_skips_bad_and_resumes(tree, models, capsys):
    root, bad = tree
    report = invert.main([str(root), "--tiny", "--batch-size", "3", "--save-images", "--no-progress"])
    out = capsys.readouterr().out
    assert report.videos == 2 and report.frames == 6 and report.inverted == 5 and report.done_before == 0
    assert [s.path for s in report.failed] == [str(bad)] and "unreadable image" in report.failed[0].reason
    assert "5 inverted" in out and str(bad) in out
    latents = sorted(root.glob("*/*/inversion/latent_codes/*.npy"))
    assert len(latents) == 5 and not (bad.parent.parent / voxceleb.LATENTS_DIR / "000001.npy").exists()
    for f in latents:
        a = np.load(f)
        assert a.shape == (14, 512) and a.dtype == np.float32 and np.all(np.isfinite(a))
    images = sorted(root.glob("*/*/inversion/frames/*.png"))
    assert [i.stem for i in images] == [f.stem for f in latents]
    assert not list(root.rglob("*.tmp"))
    # Each latent is e4e of its own frame, and each saved image G(trunc_0.7(w)) of that latent (the authors' ψ).
    nets, variables = models
    frames = np.stack([inversion.read_frame(f.parent.parent.parent / voxceleb.FRAMES_DIR / f"{f.stem}.png")
                       for f in latents])  # fmt: skip
    want = np.asarray(jax.jit(nets.e4e.apply)(variables["e4e"], from_uint8(frames)))
    got = np.stack([np.load(f) for f in latents])
    # The tiny e4e's latents of different frames differ little, so each latent must be far nearer its own frame's.
    dist = np.abs(got[:, None] - want[None]).max(axis=(2, 3))  # [latent, frame]
    assert np.all(np.diag(dist) < 0.05 * np.min(dist + np.eye(len(dist)) * 1e9, axis=1)), dist
    saved = np.stack([images_lib.read_image(i) for i in images]).astype(int)
    at = {psi: np.asarray(frames_lib.render_w(nets.g, variables["g"], jnp.asarray(want), psi)).astype(int)
          for psi in (0.7, 1.0)}  # fmt: skip
    assert np.abs(saved - at[0.7]).max() <= 1 and np.abs(saved - at[1.0]).max() > 8

    # Rerun: nothing is done again, nothing is rewritten.
    mtimes = {f: os.stat(f).st_mtime_ns for f in latents}
    again = inversion.invert_tree(root, *models, batch_size=3, save_images=True, progress=False)
    assert again.inverted == 0 and again.done_before == 5 and len(again.failed) == 1
    assert {f: os.stat(f).st_mtime_ns for f in latents} == mtimes

    # A lost latent is redone alone.
    latents[0].unlink()
    again = inversion.invert_tree(root, *models, batch_size=3, progress=False)
    assert again.inverted == 1 and latents[0].exists()

    # The tree now builds a frames dataset whose only skip is the unreadable frame.
    scan = voxceleb.scan_tree(root)
    assert scan.num_frames == 5
    assert [s.kind for s in scan.skipped] == ["missing_latent"] and scan.skipped[0].path == str(bad)


def test_batched_sharded_equals_one_frame(tree, models):
    root, _ = tree
    frames = sorted((root / "id00000" / "vid_0000" / "frames_cropped").glob("*.png"))
    x = np.stack([inversion.read_frame(f) for f in frames])
    assert x.shape == (3, 256, 256, 3)  # 64-px frames are resized as the dataset reader does
    sharding = batch_sharded(local_mesh())
    assert sharding.mesh.size == 8
    w8, _ = inversion.invert_batch(*models, np.concatenate([x] * 8)[:8], sharding)
    w1, _ = inversion.invert_batch(*models, x[1:2])
    np.testing.assert_allclose(w8[1], w1[0], atol=1e-5)


def test_bad_root_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "a" / "b" / "frames_cropped").mkdir(parents=True)
    with pytest.raises(UserError, match="has no frames"):
        inversion.plan(tmp_path)
    with pytest.raises(SystemExit):
        invert.main([str(tmp_path / "missing"), "--tiny"])
    assert "does not exist" in capsys.readouterr().err
    root = fake.make_fake_tree(tmp_path / "t", n_ids=1, n_videos=1, n_frames=1, image_size=32)
    with pytest.raises(SystemExit):
        invert.main([str(root), "--tiny", "--save-images", "--truncation", "0"])
    assert "--truncation 0.0: use a value in (0, 1]" in capsys.readouterr().err


def test_missing_weights_listed(tmp_path, capsys):
    root = fake.make_fake_tree(tmp_path / "t", n_ids=1, n_videos=1, n_frames=1, image_size=32)
    with pytest.raises(SystemExit):
        invert.main([str(root), "--e4e", str(tmp_path / "nope"), "--save-images", "--generator", str(tmp_path / "g")])
    err = capsys.readouterr().err
    assert "python -m converters.e4e" in err and "python -m converters.stylegan2" in err
