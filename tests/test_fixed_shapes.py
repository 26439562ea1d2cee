"""Fixed shapes (issue 24): videos of three lengths and two aspect ratios in one process compile each jitted
function once per documented shape (a tail batch, a new working-image height in its bucket or a tuning remainder
never compiles again). Counted with each jitted function's compilation cache after `jax.clear_caches()`."""

from __future__ import annotations

import shutil

import jax
import numpy as np

from jaxreenact.common.images import save_png
from jaxreenact.data import fake
from jaxreenact.data import video as video_lib
from jaxreenact.evaluation import protocol
from jaxreenact.face import pipeline
from jaxreenact.inference import frames, reenactment
from jaxreenact.inference.source import fixed_shapes
from jaxreenact.latent import tuning
from jaxreenact.models import fan as fan_lib
from jaxreenact.models import sfd as sfd_lib
from jaxreenact.weights import load_bundle
from jaxreenact.weights.tiny import face_locator_networks

LENGTHS = (3, 5, 6)  # with batch 4: tails of 3, 1 and 2 frames
SIZES = ((48, 64), (64, 48))  # landscape and portrait (H, W)
BATCH = 4


def _frames(n, h, w, seed):
    """Smooth random colour frames (not blank, so `FixedLocate` finds its face)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, h // 8, w // 8, 3)).astype(np.uint8)
    return np.repeat(np.repeat(small, 8, 1), 8, 2)


def _videos(tmp_path):
    out = []
    for k, (h, w) in enumerate(SIZES):
        for n in LENGTHS:
            path = tmp_path / f"v{h}x{w}_{n}.mp4"
            video_lib.write_video(path, _frames(n, h, w, 10 * k + n), fps=10)
            out.append(path)
    return out


def sizes(*fns) -> list[int]:
    return [f._cache_size() for f in fns]


def test_face_locator_compiles_once_per_height_bucket(monkeypatch):
    """S3FD and FAN over batches of every tail size and two aspect ratios: one compilation per height bucket."""
    sfd, fan = face_locator_networks(0)
    # random S3FD weights find no face; a fixed detection per image lets FAN run on every frame
    monkeypatch.setattr(sfd_lib, "postprocess", lambda b, s: [np.array([[8, 8, 40, 40, 0.999]], np.float32)] * len(b))
    locate = fixed_shapes(pipeline.FaceLocator(sfd, fan), BATCH, height_step=32)
    pre = pipeline.FacePreprocessor(locate, width=64)
    jax.clear_caches()
    for k, (h, w) in enumerate(SIZES):
        for n in (1, *LENGTHS):  # a source photo, then three videos
            pre.reset()
            video = _frames(n, h, w, k + n)
            res = [r for lo in range(0, n, BATCH) for r in pre(list(video[lo : lo + BATCH]))]
            assert len(res) == n and all(r.n_faces == 1 for r in res)
    rows = {frames.sharded_batch(1), frames.sharded_batch(BATCH)}  # a single photo, a batch
    buckets = 2  # working heights 48 and 85 (width 64) -> 64 and 96
    assert sizes(sfd_lib.dense_detections, fan_lib.crop_for_fan) == [len(rows) * buckets] * 2
    assert sizes(fan_lib.fan_forward, fan_lib.decode_heatmaps) == [len(rows)] * 2


def test_reenact_videos_of_three_lengths_and_two_shapes_compile_once(tmp_path):
    src = tmp_path / "source.png"
    save_png(src, _frames(1, 48, 64, 99)[0])
    bundle = load_bundle(["generator", "e4e", "deca", "A"], tiny_seed=0)
    jax.clear_caches()
    for i, video in enumerate(_videos(tmp_path)):
        opts = reenactment.Options(source=str(src), driving=str(video), out=str(tmp_path / f"out{i}"), tune=False,
                                   batch_size=BATCH, tiny=True, progress=False, paste_back=i == 0)  # fmt: skip
        summary = reenactment.run(opts, locate=pipeline.FixedLocate(), bundle=bundle)
        assert summary["frames"] == video_lib.probe_video(video).num_frames
        shutil.rmtree(tmp_path / f"out{i}")
    rows = len({frames.sharded_batch(1), frames.sharded_batch(BATCH)})  # the source's crop, the driving batches
    assert sizes(frames._p_of, frames._render_dp, frames.render_w, frames.e4e_codes) == [rows, 1, 1, 1]


def test_tuning_remainder_does_not_compile_again():
    nets, variables = load_bundle(["generator", "lpips"], tiny_seed=0)
    w = np.asarray(jax.random.normal(jax.random.key(0), (1, nets.g.n_latent, 512)), np.float32) * 0.1
    x = np.zeros((1, 256, 256, 3), np.float32)
    jax.clear_caches()
    r = tuning.tune_generator(nets.g, variables["g"], nets.lpips, variables["lpips"], w, x, steps=5, chunk=3,
                              progress=False)  # fmt: skip
    assert r.losses.shape == (1, 5)
    assert tuning._run_steps._cache_size() == 1  # 3 steps, then the remainder of 2 in the same program


def test_evaluate_videos_of_three_lengths_compiles_once(tmp_path):
    import configs.eval as eval_config

    root = fake.make_fake_tree(tmp_path / "tree", n_ids=3, n_videos=1, n_frames=max(LENGTHS), seed=0)
    videos = sorted(root.glob("*/*/frames_cropped"))
    for folder, n in zip(videos, LENGTHS):
        for f in sorted(folder.iterdir())[n:]:
            f.unlink()
    config = eval_config.get_config("tiny")
    config.root = str(root)
    config.eval.batch_size = BATCH
    config.eval.cross = False
    jax.clear_caches()
    protocol.evaluate(config, tmp_path / "w", progress=False)
    rows = len({frames.sharded_batch(1), frames.sharded_batch(BATCH)})  # a source frame, the batches
    got = sizes(frames._p_of, protocol._id_csim, protocol._lpips, protocol._inception)
    assert got == [rows, 1, 1, 1]
