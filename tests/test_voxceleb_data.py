"""VoxCeleb-style datasets: scanning with name matching and skip reports, the TFDS build, readers, pairs, sharding."""

import json
import os

import jax
import numpy as np
import PIL.Image
import pytest

from jaxreenact.common.errors import UserError
from jaxreenact.common.mesh import make_mesh
from jaxreenact.data import pipeline
from jaxreenact.data import voxceleb as vx
from jaxreenact.data.build import main as build_main
from jaxreenact.data.fake import make_fake_dataset, make_fake_tree

SIZE = 32


def _latent_dir(root, i, v):
    return root / f"id{i:05d}" / f"vid_{v:04d}" / "inversion" / "latent_codes"


def _frame_dir(root, i, v):
    return root / f"id{i:05d}" / f"vid_{v:04d}" / "frames_cropped"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A 2 ids × 3 videos × 5 frames tree with every kind of problem, built once."""
    tmp = tmp_path_factory.mktemp("vox")
    root = make_fake_tree(tmp / "root", n_ids=2, n_videos=3, n_frames=5, seed=3, image_size=SIZE)
    (_latent_dir(root, 0, 0) / "000001.npy").unlink()  # frame without latent
    (_frame_dir(root, 0, 1) / "000002.png").write_bytes(b"not a png")  # unreadable frame
    good = (_frame_dir(root, 0, 2) / "000000.png").read_bytes()
    (_frame_dir(root, 0, 2) / "000003.png").write_bytes(good[: len(good) // 2])  # truncated PNG
    np.save(_latent_dir(root, 1, 0) / "000004.npy", np.zeros((13, 512), np.float32))  # wrong shape
    # A renamed latent: its frame has no latent, and the latent has no frame. Neither is paired with a neighbour.
    (_latent_dir(root, 1, 1) / "000002.npy").rename(_latent_dir(root, 1, 1) / "000002b.npy")
    np.save(_latent_dir(root, 1, 2) / "000000.npy", np.ones((1, 14, 512), np.float32))  # leading axis: accepted
    # A video with one usable frame (no pairs from it), and a file of another size (resized).
    for f in range(1, 5):
        (_frame_dir(root, 1, 2) / f"{f:06d}.png").unlink()
        (_latent_dir(root, 1, 2) / f"{f:06d}.npy").unlink()
    PIL.Image.new("RGB", (SIZE * 2, SIZE), (10, 20, 30)).save(_frame_dir(root, 0, 0) / "000004.png")
    report = vx.build_frames_dataset(root, tmp / "out", split="train", image_size=SIZE, progress=False)
    return root, tmp / "out", report


def test_build_reports_and_skips(built):
    root, out, report = built
    kinds = sorted((s.kind, os.path.relpath(s.path, root)) for s in report.skipped)
    assert kinds == [
        ("bad_latent", "id00001/vid_0000/inversion/latent_codes/000004.npy"),
        ("missing_frame", "id00001/vid_0001/inversion/latent_codes/000002b.npy"),
        ("missing_latent", "id00000/vid_0000/frames_cropped/000001.png"),
        ("missing_latent", "id00001/vid_0001/frames_cropped/000002.png"),
        ("unreadable_frame", "id00000/vid_0001/frames_cropped/000002.png"),
        ("unreadable_frame", "id00000/vid_0002/frames_cropped/000003.png"),
    ]
    assert report.num_examples == 6 * 5 - 5 - 4 == 21 and report.num_videos == 6  # 5 skipped frames, 4 removed
    saved = json.loads((vx.dataset_dir(out, "train") / vx.REPORT_FILE).read_text())
    assert saved["num_skipped"] == 6 and saved["num_examples"] == report.num_examples
    assert "missing_latent" in report.summary()


def test_data_matches_files_by_name(built):
    root, out, _ = built
    ds = vx.VoxCelebFrames(out, "train", num_threads=2)
    assert len(ds) == 21 and ds.image_size == SIZE
    batch = ds.read(np.arange(len(ds)))
    assert batch["image"].shape == (21, SIZE, SIZE, 3) and batch["image"].dtype == np.float32
    assert batch["latent"].shape == (21, 14, 512) and batch["latent"].dtype == np.float32
    for k in range(len(ds)):
        id_, video = ds.videos[ds.video_of_example[k]].split("/")
        name = ds.frame_names[k]
        expected_latent = np.load(root / id_ / video / "inversion" / "latent_codes" / f"{name}.npy").reshape(14, 512)
        np.testing.assert_array_equal(batch["latent"][k], expected_latent)
        img = PIL.Image.open(root / id_ / video / "frames_cropped" / f"{name}.png").convert("RGB")
        if img.size != (SIZE, SIZE):
            img = img.resize((SIZE, SIZE), PIL.Image.BILINEAR)
        np.testing.assert_array_equal(np.rint((batch["image"][k] + 1) * 127.5).astype(np.uint8), np.asarray(img))
    # Frame 000003 of the renamed video keeps its own latent (the authors' sorted-index pairing would shift it).
    assert ["000000", "000001", "000003", "000004"] == [
        ds.frame_names[k] for k in ds.video_members[ds.videos.index("id00001/vid_0001")]
    ]


def test_pairs_stay_in_video_and_are_deterministic(built):
    _, out, _ = built
    ds = vx.VoxCelebFrames(out, "train", num_threads=1)
    sizes = {v: len(m) for v, m in enumerate(ds.video_members)}
    assert sorted(sizes.values()) == [1, 4, 4, 4, 4, 4]
    for epoch in range(3):
        pairs = ds.epoch_pairs(seed=7, epoch=epoch)
        assert len(pairs) == 2 * 5 == ds.num_pairs()
        src_video, tgt_video = ds.video_of_example[pairs[:, 0]], ds.video_of_example[pairs[:, 1]]
        np.testing.assert_array_equal(src_video, tgt_video)
        assert np.all(pairs[:, 0] != pairs[:, 1])
        assert sorted(np.bincount(src_video, minlength=6).tolist()) == [0, 2, 2, 2, 2, 2]
        assert len(set(pairs[:, 0].tolist())) == len(pairs)  # 2 distinct sources per video
        np.testing.assert_array_equal(pairs, ds.epoch_pairs(seed=7, epoch=epoch))
    assert not np.array_equal(ds.epoch_pairs(7, 0), ds.epoch_pairs(7, 1))
    assert not np.array_equal(ds.epoch_pairs(7, 0), ds.epoch_pairs(8, 0))
    ev = ds.eval_pairs(0)
    assert len(ev) == 21 - 1 and np.all(ev[:, 0] != ev[:, 1])
    np.testing.assert_array_equal(ds.video_of_example[ev[:, 0]], ds.video_of_example[ev[:, 1]])

    batches = list(ds.paired_epoch(7, 1, batch_size=4))
    assert len(batches) == 2 == ds.paired_steps_per_epoch(4)
    b = batches[0]
    assert b["source_image"].shape == (4, SIZE, SIZE, 3) and b["target_latent"].shape == (4, 14, 512)
    np.testing.assert_array_equal(b["source_index"], ds.epoch_pairs(7, 1)[:4, 0])
    np.testing.assert_array_equal(b["target_image"], ds.read(b["target_index"])["image"])
    np.testing.assert_array_equal(b["source_latent"], ds.read(b["source_index"])["latent"])


def _cat(batches, key):
    return np.concatenate([b[key] for b in batches])


def test_host_sharding_and_resume(built):
    _, out, _ = built
    ds = vx.VoxCelebFrames(out, "train", num_threads=1)
    one = list(ds.iterate_frames(8, seed=1, epoch=2))
    assert len(one) == 2 == ds.steps_per_epoch(8)
    # Two processes whose devices hold interleaved rows (as on a mesh whose device order alternates processes).
    rows = [np.array([0, 1, 4, 5]), np.array([2, 3, 6, 7])]
    hosts = [list(ds.iterate_frames(8, seed=1, epoch=2, rows=r)) for r in rows]
    for step in range(2):
        a, b = hosts[0][step]["index"], hosts[1][step]["index"]
        assert len(a) == len(b) == 4 and not set(a) & set(b)
        np.testing.assert_array_equal(a, one[step]["index"][rows[0]])
        np.testing.assert_array_equal(b, one[step]["index"][rows[1]])
        np.testing.assert_array_equal(hosts[1][step]["image"], one[step]["image"][rows[1]])
    assert len(set(_cat(one, "index").tolist())) == 16  # an epoch has no repeats (last 5 of 21 dropped)
    np.testing.assert_array_equal(_cat(one, "index"), ds.epoch_order(1, 2)[:16])
    # Padding for evaluation: the last global batch is padded and marked invalid.
    tail = list(ds.iterate_frames(8, seed=1, epoch=2, drop_remainder=False))
    assert len(tail) == 3 and tail[-1]["valid"].sum() == 5 and tail[0]["valid"].all()
    # Resume: the stream from global step 3 equals the full stream from step 3 on (crossing an epoch boundary).
    full = ds.frame_batches(8, seed=1)
    ref = [next(full)["index"] for _ in range(6)]
    resumed = ds.frame_batches(8, seed=1, start_step=3)
    for step in range(3, 6):
        np.testing.assert_array_equal(next(resumed)["index"], ref[step])
    np.testing.assert_array_equal(ref[2], ds.epoch_order(1, 1)[:8])
    # Pairs shard the same way.
    one_p = list(ds.paired_epoch(5, 0, batch_size=4))
    host_p = [list(ds.paired_epoch(5, 0, batch_size=4, rows=r)) for r in ([3, 0], [1, 2])]
    for step in range(len(one_p)):
        got = np.concatenate([host_p[0][step]["source_index"], host_p[1][step]["source_index"]])
        np.testing.assert_array_equal(got, one_p[step]["source_index"][[3, 0, 1, 2]])
    stream = ds.pair_batches(4, seed=5, start_step=1)
    np.testing.assert_array_equal(next(stream)["target_index"], one_p[1]["target_index"])
    with pytest.raises(ValueError, match="not rows of a global batch of 5"):
        next(ds.iterate_frames(5, 0, 0, rows=[4, 5]))


def test_to_global_on_8_devices(built):
    _, out, _ = built
    ds = vx.VoxCelebFrames(out, "train", num_threads=2)
    mesh = make_mesh(8, order="3,6,0,5,1,7,2,4")  # any device order: each device gets its rows
    sharding = pipeline.data_sharding(mesh)
    batch = next(ds.iterate_frames(16, seed=0, epoch=0))
    rows = pipeline.process_rows(sharding, 16)
    np.testing.assert_array_equal(rows, np.arange(16))  # one process holds every row
    g = pipeline.to_global(batch, sharding, rows, 16)
    for shard in g["latent"].addressable_shards:
        np.testing.assert_array_equal(np.asarray(shard.data), batch["latent"][shard.index])
    assert g["image"].shape == (16, SIZE, SIZE, 3) and len(g["image"].sharding.device_set) == 8
    assert g["image"].sharding.spec == jax.sharding.PartitionSpec("data")
    np.testing.assert_array_equal(np.asarray(g["image"]), batch["image"])
    np.testing.assert_array_equal(np.asarray(g["latent"]), batch["latent"])
    np.testing.assert_array_equal(np.asarray(g["valid"]), batch["valid"])
    total = jax.jit(lambda x: x.sum())(g["latent"])
    np.testing.assert_allclose(total, batch["latent"].sum(dtype=np.float64), rtol=1e-4)


def test_errors(tmp_path, built):
    with pytest.raises(UserError, match="does not exist"):
        vx.scan_tree(tmp_path / "missing")
    (tmp_path / "empty" / "id0").mkdir(parents=True)
    with pytest.raises(UserError, match="holds no videos"):
        vx.build_frames_dataset(tmp_path / "empty", tmp_path / "out")
    root, out, _ = built
    with pytest.raises(UserError, match="two levels above"):
        vx.scan_tree(root / "id00000")
    with pytest.raises(UserError, match="already exists"):
        vx.build_frames_dataset(root, out, split="train")
    with pytest.raises(UserError, match="no built dataset"):
        vx.VoxCelebFrames(out, "test")
    with pytest.raises(UserError, match="split name"):
        vx.build_frames_dataset(root, out, split="a/b")
    # Every frame unusable: a clear error, not a TFDS traceback.
    bad = make_fake_tree(tmp_path / "bad", n_ids=1, n_videos=1, n_frames=2, image_size=8)
    for p in _frame_dir(bad, 0, 0).iterdir():
        p.write_bytes(b"x")
    with pytest.raises(UserError, match="every frame"):
        vx.build_frames_dataset(bad, tmp_path / "bad_out", image_size=8, progress=False)
    with pytest.raises(UserError, match="every frame"):  # the failed build left nothing that blocks a retry
        vx.build_frames_dataset(bad, tmp_path / "bad_out", image_size=8, progress=False)
    with pytest.raises(SystemExit) as e:
        build_main(["--root", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert e.value.code == 2


def test_cli_builds_a_split(tmp_path, capsys):
    root = make_fake_tree(tmp_path / "root", n_ids=1, n_videos=2, n_frames=3, image_size=SIZE, leading_latent_axis=True)
    report = build_main(
        [
            "--root",
            str(root),
            "--out",
            str(tmp_path / "out"),
            "--split",
            "test",
            "--image-size",
            str(SIZE),
            "--no-progress",
        ]
    )
    assert report.num_examples == 6 and not report.skipped
    assert "skipped: nothing" in capsys.readouterr().out
    ds = vx.VoxCelebFrames(tmp_path / "out", "test")
    assert ds.videos == ["id00000/vid_0000", "id00000/vid_0001"] and ds.num_pairs() == 4


def test_fake_dataset_and_prefetch(tmp_path):
    out = make_fake_dataset(tmp_path, split="train", image_size=SIZE, n_frames=3)
    assert make_fake_dataset(tmp_path, split="train", image_size=SIZE) == out  # reused, not rebuilt
    ds = vx.VoxCelebFrames(out, "train")
    assert len(ds) == 12 and ds.num_pairs() == 8
    ref = [b["index"] for b in ds.iterate_frames(4, seed=0, epoch=0)]
    got = [b["index"] for b in pipeline.prefetch(ds.iterate_frames(4, seed=0, epoch=0), size=2)]
    assert len(got) == 3
    for a, b in zip(ref, got):
        np.testing.assert_array_equal(a, b)
