"""`python -m jaxreenact.evaluate` (Table 1 protocol) on a made-up tree with tiny random networks, the frozen pair
lists, and the metric identities the protocol relies on."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tiny_checkpoints
from configs import eval as eval_config
from jaxreenact import evaluate
from jaxreenact.common.errors import UserError
from jaxreenact.data import fake
from jaxreenact.evaluation import metrics, pairs, protocol, report
from jaxreenact.face.pipeline import FixedLocate
from jaxreenact.models import arcface
from jaxreenact.pose import params as pose
from jaxreenact.weights import load_bundle


def test_cross_pairs_frozen_deterministic_and_cross_subject(tmp_path):
    root = fake.make_fake_tree(tmp_path / "tiny_tree", n_ids=2, n_videos=1, n_frames=1, image_size=16)
    # The shipped tiny list is what the documented command writes for the tiny tree.
    argv = ["--root", str(root), "--n", "200", "--seed", "0", "--out", str(tmp_path / "p.txt")]
    got = pairs.main([*argv, "--self-out", str(tmp_path / "self_videos.txt")])
    assert got == pairs.read_pairs(eval_config.TINY_PAIRS) == pairs.read_pairs(tmp_path / "p.txt")
    assert (
        pairs.read_videos(tmp_path / "self_videos.txt")
        == pairs.list_videos(root)
        == ["id00000/vid_0000", "id00001/vid_0000"]
    )
    videos = [f"id{i:05d}/vid_{v:04d}" for i in range(5) for v in range(3)]
    a, b = pairs.make_cross_pairs(videos, 40, seed=3), pairs.make_cross_pairs(videos, 40, seed=3)
    assert a == b and len(set(a)) == 40 and a != pairs.make_cross_pairs(videos, 40, seed=4)
    assert all(s.split("/")[0] != d.split("/")[0] for s, d in a)  # never the same person, so never the same video
    with pytest.raises(UserError, match="two identities"):
        pairs.make_cross_pairs(["id0/a", "id0/b"], 5)
    (tmp_path / "self.txt").write_text("id00000/vid_0000 id00000/vid_0000\n")
    with pytest.raises(UserError, match="with itself"):
        pairs.read_pairs(tmp_path / "self.txt")
    with pytest.raises(UserError, match=r"1 listed video\(s\) not found .*id00009/vid_0000"):
        pairs.check_videos_exist(root, ["id00000/vid_0000", "id00009/vid_0000"], "cross pairs")


def _tiny(tmp_path, **eval_overrides):
    c = eval_config.get_config("tiny")
    with c.unlocked():
        for k, v in eval_overrides.items():
            setattr(c.eval, k, v)
    return c


class NoCalls:
    def __call__(self, images):
        raise AssertionError("a cached video was computed again")


class ImageLocate(FixedLocate):
    """`FixedLocate` whose landmarks depend on the image (shifted and scaled by its colour means), so NME, DECA's
    crop box and p differ between a reenacted frame and its driving frame."""

    def __call__(self, images):
        out = super().__call__(images)
        for img, loc in zip(images, out):
            if loc.landmarks is not None:
                m = np.asarray(img, np.float64).reshape(-1, 3).mean(0) / 255.0
                c = loc.landmarks.mean(0)
                loc.landmarks[:] = (c + (loc.landmarks - c) * (0.8 + 0.4 * m[2]) + 40 * (m[:2] - 0.5)).astype(
                    np.float32
                )
        return out


def _check_what_each_metric_compares(work, results):
    """Recompute every metric of the frames shown in a self and a cross item's grid (source | driving | reenacted,
    as cached) and check the protocol compared the right images: self against the driving frame, cross CSIM against
    the source and pose/expression against the driving frame."""
    ev = protocol.load(_tiny(None), locate=ImageLocate())
    cache = work / results["cache"]
    am, av = ev.nets.arcface, ev.variables["arcface"]
    lm, lv = ev.nets.lpips, ev.variables["lpips"]
    x = lambda a: jnp.asarray(a, jnp.float32) / 127.5 - 1.0  # noqa: E731
    for kind, key in (("self", "id00001_vid_0000"), ("cross", "id00000_vid_0000__id00001_vid_0000")):
        res = protocol._load_npz(cache / kind / f"{key}.npz")
        grid = res["grid"]  # [2 shown frames (0 and 2), 256, 768, 3]
        src, drv, rec = grid[:, :, :256], grid[:, :, 256:512], grid[:, :, 512:]
        shown = [0, 2]
        assert res["valid_driving"][shown].all() and res["valid_reenacted"][shown].all()
        a_drv, a_rec, a_src = (protocol.analyze(ev, im, 2) for im in (drv, rec, src))
        c_drv = np.asarray(metrics.csim_images(av, x(rec), x(drv), module=am))
        c_src = np.asarray(metrics.csim_images(av, x(rec), x(src), module=am))
        ang = list(ev.space.layout.angle_dirs)
        p_drv = np.asarray(metrics.pose_error(a_rec.p[:, ang], a_drv.p[:, ang]))
        p_src = np.asarray(metrics.pose_error(a_rec.p[:, ang], a_src.p[:, ang]))
        jaw = ev.space.layout.jaw
        e_drv = np.asarray(metrics.expression_errors(a_rec.p[:, jaw:], a_drv.p[:, jaw:], ev.space.ranges)["exp_raw"])
        np.testing.assert_allclose(res["pose"][shown], p_drv, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(res["exp_raw"][shown], e_drv, rtol=1e-4, atol=1e-7)
        # Frame 2's driving frame is not the source: the two candidates differ far beyond the tolerance.
        assert np.abs(p_drv - p_src)[1] > 1e-2 * p_drv[1]
        want, other = (c_drv, c_src) if kind == "self" else (c_src, c_drv)
        np.testing.assert_allclose(res["csim"][shown], want, atol=2e-6)
        assert np.abs(want - other)[1] > 2e-5
        if kind == "self":
            lp = np.asarray(lm.apply(lv, x(rec), x(drv))).reshape(-1)
            np.testing.assert_allclose(res["lpips"][shown], lp, rtol=1e-4, atol=1e-6)
            nme = np.asarray(metrics.nme(a_rec.landmarks, a_drv.landmarks))
            np.testing.assert_allclose(res["nme"][shown], nme, rtol=1e-4)
            assert np.all(nme > 0)  # the landmarks follow the images


def test_evaluate_tiny_tree_end_to_end_excludes_faceless_frames_and_resumes(tmp_path, capsys):
    work = tmp_path / "ev"
    # Face-locator calls, first video: 0 source, 1-3 driving frames, 4-6 reenacted frames.
    results = evaluate.run(_tiny(tmp_path), work, progress=False, locate=ImageLocate(missing={2, 6}))
    s, c = results["self"], results["cross"]
    assert (s["videos"], s["frames"], s["frames_scored"], s["no_face_driving"], s["no_face_reenacted"]) == (
        2,
        6,
        4,
        1,
        1,
    )
    assert (c["videos"], c["frames"], c["frames_scored"]) == (2, 6, 6)
    for m in ("csim", "lpips", "fid", "nme", "nme_interocular", "pose", "exp_raw", "exp_norm"):
        assert np.isfinite(s["metrics"][m]["mean"]), m
    assert s["metrics"]["csim"]["n"] == 4 and s["metrics"]["fid"]["n"] == 4
    assert set(c["metrics"]) == {"csim", "pose", "exp_raw", "exp_norm"}
    on_disk = json.loads((work / "results.json").read_text())
    assert on_disk["self"]["frames_scored"] == 4 and on_disk["weights_sha256"] and on_disk["code_version"]
    table = (work / "table1.md").read_text()
    assert "| Ours (paper, Table 1) | 0.66 | 0.11 | 35 | 14.1 |" in table and "4 of 6 frames scored" in table
    assert "Ours (paper, Table 1)" in capsys.readouterr().out
    csv = (work / "self" / "id00000_vid_0000.csv").read_text().splitlines()
    assert csv[0].startswith("frame,valid_driving,valid_reenacted,csim,lpips,nme") and len(csv) == 4
    assert csv[2].startswith("000001,0,1,") and csv[3].startswith("000002,1,0,")
    assert csv[2].split(",")[3:] == [""] * 7 == csv[3].split(",")[3:]  # excluded: not scored (not zeros)
    assert all(v for v in csv[1].split(",")[3:])
    for kind, key in (("self", "id00001_vid_0000"), ("cross", "id00000_vid_0000__id00001_vid_0000")):
        assert (work / "plots" / f"{kind}_{key}.svg").read_text().startswith("<svg")
        assert (work / "grids" / f"{kind}_{key}.png").stat().st_size > 0
    _check_what_each_metric_compares(work, results)
    # Interrupted and rerun: every video comes from the cache (no networks loaded); the same numbers; a lost
    # per-video report is rewritten from the cache.
    (work / "results.json").unlink()
    (work / "self" / "id00000_vid_0000.csv").unlink()
    again = evaluate.run(_tiny(tmp_path), work, progress=False, locate=NoCalls())
    assert again["self"]["metrics"] == results["self"]["metrics"] and again["cache"] == results["cache"]
    assert (work / "self" / "id00000_vid_0000.csv").read_text().splitlines() == csv
    # A changed frame selection is another cache: recomputed, never mixed with the old videos.
    fewer = evaluate.run(_tiny(tmp_path, max_frames=2), work, progress=False, locate=ImageLocate())
    assert fewer["cache"] != results["cache"] and (fewer["self"]["frames"], fewer["self"]["frames_scored"]) == (4, 4)


def test_missing_videos_and_weights_are_clear_errors(tmp_path):
    c = _tiny(tmp_path)
    with c.unlocked():
        c.root = str(fake.make_fake_tree(tmp_path / "t", n_ids=1, n_videos=1, n_frames=1, image_size=16))
    with pytest.raises(UserError, match="id00001/vid_0000"):  # the tiny pair list names a video this tree lacks
        protocol.items_of(c)
    real = eval_config.get_config()
    with real.unlocked():
        for n in protocol.WEIGHT_NAMES:
            setattr(real.weights, n, str(tmp_path / f"no_{n}"))
    with pytest.raises(UserError) as e:
        protocol.load(real)
    for cmd in ("converters.inception", "converters.arcface", "converters.sfd", "converters.direction_matrix"):
        assert cmd in str(e.value)


def test_identical_images_give_lpips_zero_and_csim_one():
    nets = protocol.load(eval_config.get_config("tiny"))
    x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (2, 256, 256, 3)), jnp.float32)
    lm, lv = nets.nets.lpips, nets.variables["lpips"]
    np.testing.assert_allclose(np.asarray(protocol._lpips(lm, lv, x, x)), 0.0, atol=1e-7)
    am, av = nets.nets.arcface, nets.variables["arcface"]
    np.testing.assert_allclose(np.asarray(protocol._id_csim(am, av, x, x)), 1.0, atol=1e-5)
    assert float(protocol._id_csim(am, av, x, x[::-1])[0]) < 0.9999
    # One CSIM: the evaluation's (= the trainer validation's metrics.csim_images) is 1 - the identity loss.

    got = np.asarray(protocol._id_csim(am, av, x, x[::-1]))
    loss = jax.jit(lambda v, a, b: arcface.identity_loss(v, a, b, module=am))(av, x, x[::-1])
    np.testing.assert_allclose(1.0 - got.mean(), float(loss), atol=1e-6)


def test_line_plot_svg_gaps_and_escaping():
    svg = report.line_plot_svg({"pose <deg>": np.array([1.0, np.nan, 2.0, 3.0]), "CSIM": np.zeros(3)}, "a & b")
    assert svg.startswith("<svg") and svg.count("<polyline") == 3  # the NaN frame splits the first series
    assert "a &amp; b" in svg and "pose &lt;deg&gt;" in svg
    import xml.dom.minidom

    xml.dom.minidom.parseString(svg)  # well-formed


def test_an_A_workdir_is_accepted_with_its_units_and_fingerprinted(tmp_path):
    """config.weights.A = a training workdir on the real loading path (converted files, not tiny): the evaluator
    holds that A, builds Δp in its units (shift_scale from the workdir), and the cache key follows A's parameters."""
    names = [n for n in protocol.WEIGHT_NAMES if n != "A"]
    paths = tiny_checkpoints.converted(tmp_path / "w", names)
    _, av = load_bundle(("A",), tiny_seed=0)
    work = tiny_checkpoints.training_workdir(tmp_path / "run", av["A"], shift_scale=3.0)
    c = eval_config.get_config()
    with c.unlocked():
        c.root = str(fake.make_fake_tree(tmp_path / "t", n_ids=1, n_videos=1, n_frames=1, image_size=16))
        for n, p in {**paths, "A": str(work)}.items():
            setattr(c.weights, n, p)
    ev = protocol.load(c, locate=FixedLocate())
    assert ev.nets.A.shift_scale == 3.0 and ev.space.layout.shift_scale == 3.0
    np.testing.assert_array_equal(ev.variables["A"]["params"]["linear"]["bias"], av["A"]["params"]["linear"]["bias"])
    six = pose.pose_space("voxceleb")
    np.testing.assert_allclose(ev.space.units.a[4:], six.units.a[4:] / 2, rtol=1e-12)  # expressions: ±3
    assert ev.space.units.a[3] == six.units.a[3]  # the jaw line is ±6 in the authors' code
    sha = protocol.weights_sha256(c)
    assert sha["A"] == {"training workdir (latest checkpoint) params": protocol.tree_sha256(av["A"])}
    other = jax.tree.map(lambda x: np.asarray(x) + 1, av["A"])
    tiny_checkpoints.training_workdir(tmp_path / "run2", other)
    with c.unlocked():
        c.weights.A = str(tmp_path / "run2")
    assert protocol.fingerprint(c, protocol.weights_sha256(c)) != protocol.fingerprint(c, sha)
