"""`python -m jaxreenact.parity record` then `python -m jaxreenact.parity FOLDER --weights REPO`.

CI has neither the authors' repository nor a network, so the first test records with a stand-in tree under the
authors' module names (tests/authors_standin, built from tests/torch_reference) and random checkpoints in their
layout, then replays what it recorded with the port: every row passes and both frameworks' times are printed.
With a clone of the authors' repository named by JAXREENACT_AUTHORS_REPO, the second test regenerates random
checkpoints in their layout (tests/golden/regen.py), records every kind the recorder knows with the authors' own
code, and the parity program passes on all of it (run with -s to see the rows and times).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from test_parity import ROW, run, tables

import goldens

torch = pytest.importorskip("torch", reason="the recorder runs PyTorch code")
pytestmark = pytest.mark.torch

STANDIN = pathlib.Path(__file__).parent / "authors_standin"
TIME = re.compile(r"^  time: authors' code (\S+) s \((.+)\); port (\S+) s on (\S+) ")


def standin_repo(root: pathlib.Path) -> pathlib.Path:
    """A copy of the stand-in tree with a 32² generator and a direction matrix, random, in the authors' layout."""
    from torch_reference.stylegan2 import random_generator

    repo = shutil.copytree(STANDIN, root / "authors")
    (repo / "pretrained_models").mkdir()
    g = random_generator(32, 1, seed=3)
    torch.save(
        {"g_ema": g.state_dict(), "latent_avg": torch.randn(512)}, repo / "pretrained_models/stylegan-voxceleb.pt"
    )
    torch.manual_seed(4)
    lin = torch.nn.Linear(15, 8 * 512)
    ck = {"A_matrix": {"linear.weight": lin.weight.detach() * 0.3, "linear.bias": lin.bias.detach()},
          "learned_directions": 15, "shift_scale": 6.0, "w_plus": True, "num_layers_shift": 8, "shift_dim": 512}  # fmt: skip
    torch.save(ck, repo / "pretrained_models/A_matrix.pt")
    return repo


def test_record_standin_then_parity(tmp_path):
    repo, out = standin_repo(tmp_path), tmp_path / "rec"
    code, stdout, err = run("record", "--authors-repo", repo, "--out", out, "direction_matrix")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["direction_matrix", "stylegan2_vox256"]  # its generator too
    spec = json.loads((out / "stylegan2_vox256/spec.json").read_text())
    # the stand-in CUDA ops were used (no CUDA build here) and checked against the tree's own CPU function
    assert "upfirdn2d_native" in spec["stand_ins"]["libs/gan/StyleGAN2/op"]
    assert re.search(
        r"on a CPU tensor: max abs 0\).*ScaledLeakyReLU.*max abs 0$", spec["stand_ins"]["libs/gan/StyleGAN2/op"]
    )
    assert spec["timing"]["authors_s"] > 0 and spec["files"][0]["file"] == "pretrained_models/stylegan-voxceleb.pt"
    with np.load(out / "stylegan2_vox256/inputs.npz") as z:  # the recorded draw, not the checkpoint's latent_avg
        assert z["truncation_latent"].shape == (1, 512)
    assert "python -m jaxreenact.parity" in stdout and "--weights" in stdout

    code, stdout, err = run(out / "stylegan2_vox256", out / "direction_matrix", "--weights", repo)
    t = tables(stdout)
    assert code == 0, stdout
    assert set(t["stylegan2_vox256"]) == set(spec["expected"]) and "generate_image_from_wplus_trunc" in spec["expected"]
    assert all(r[3] == "PASS" for rows in t.values() for r in rows.values())
    assert t["direction_matrix"]["image"][1] <= 1e-4
    times = [TIME.match(line) for line in stdout.splitlines() if line.startswith("  time:")]
    assert len(times) == 2 and all(times) and all(float(m.group(3)) > 0 for m in times)

    # a recorded folder has no random-weight spec: without --weights it says what to pass (one line, exit 2)
    code, stdout, err = run(out / "direction_matrix", "--no-progress")
    assert code == 2 and "--weights AUTHORS_REPO" in err and len(err.strip().splitlines()) == 1


def test_record_lpips_standin_then_parity(tmp_path):
    """A loss kind on the user's image: LPIPS (the stand-in tree's, from torch_face_ref) on the source and, with no
    --driving, a second view of it; the parity program passes every row."""
    from PIL import Image
    from tuning_floor import smooth_image

    repo, out = standin_repo(tmp_path), tmp_path / "rec"
    for file in ("alexnet-owt-7be5be79.pth", "alex.pth"):
        goldens.write_checkpoint("lpips_perceptual", repo / "pretrained_models" / file, file=file)
    src = smooth_image(np.random.default_rng(7))[0].transpose(1, 2, 0)
    Image.fromarray(src).save(tmp_path / "source.png")
    code, stdout, err = run("record", "--authors-repo", repo, "--out", out, "--source", tmp_path / "source.png",
                            "lpips_perceptual")  # fmt: skip
    assert code == 0, err
    with np.load(out / "lpips_perceptual/inputs.npz") as z:
        x, y = z["x_u8"], z["y_u8"]
    view = np.asarray(Image.fromarray(src).crop((16, 16, 240, 240)).resize((256, 256), Image.BICUBIC))
    assert np.array_equal(x[0].transpose(1, 2, 0), src) and np.array_equal(x[1].transpose(1, 2, 0), view)
    assert np.array_equal(y[0], x[1][:, :, ::-1]) and np.array_equal(y[1], x[0][:, :, ::-1])
    spec = json.loads((out / "lpips_perceptual/spec.json").read_text())
    with np.load(out / "lpips_perceptual/expected.npz") as z:
        assert spec["expected"]["grad_x"]["tol_max_abs"] == pytest.approx(1e-3 * np.abs(z["grad_x"]).max())
        assert z["per_layer"].sum() / 2 == pytest.approx(float(z["lpips"]), rel=1e-5) and z["lpips"] > 0

    code, stdout, err = run(out / "lpips_perceptual", "--weights", repo, "--no-progress")
    t = tables(stdout)["lpips_perceptual"]
    assert code == 0, stdout
    assert set(t) == set(spec["expected"]) and all(r[3] == "PASS" for r in t.values())
    assert sum(1 for line in stdout.splitlines() if TIME.match(line)) == 1


def test_record_bad_input_is_one_line(tmp_path):
    repo = standin_repo(tmp_path)
    for argv, msg in (
        (["--authors-repo", tmp_path / "nope", "--out", tmp_path / "o"], "not a clone of the authors' repository"),
        (
            ["--authors-repo", repo, "--out", tmp_path / "o", "train_step_real"],
            "cannot record train_step_real (unknown kind); kinds recorded: stylegan2_vox256",
        ),
        (["--authors-repo", repo, "--out", tmp_path / "o", "reenact_frames"], "reenact_frames run on your image"),
        (
            ["--authors-repo", repo, "--out", tmp_path / "o", "--source", tmp_path / "s.png", "reenact_frames"],
            "missing libs/DECA/data/deca_model.tar, pretrained_models/e4e-voxceleb.pt, libs/DECA/data/generic_model.pkl",
        ),
        (["--authors-repo", repo, "--out", tmp_path / "o", "generator_tuning"], "give --source IMG"),
        (["--authors-repo", repo, "--out", tmp_path / "o", "lpips_perceptual"], "lpips_perceptual run on your image"),
        (
            ["--authors-repo", repo, "--out", tmp_path / "o", "--source", tmp_path / "s.png", "irse50_arcface"],
            "missing pretrained_models/model_ir_se50.pth (the authors' checkpoints",
        ),
    ):
        code, stdout, err = run("record", *argv)
        assert code == 2 and msg in err and len(err.strip().splitlines()) == 1, (argv, err)
    (repo / "pretrained_models/A_matrix.pt").unlink()
    code, _, err = run("record", "--authors-repo", repo, "--out", tmp_path / "o", "direction_matrix")
    assert code == 2 and "missing pretrained_models/A_matrix.pt" in err


AUTHORS = os.environ.get("JAXREENACT_AUTHORS_REPO")


def link_tree(clone: pathlib.Path, repo: pathlib.Path, own: tuple[str, ...]) -> pathlib.Path:
    """`repo` with the clone's files by link, except the folders `own` (empty, ours to fill): the clone is left as
    it is. The folders on the way to an owned one are real folders, so the links never lead into the clone there."""
    repo.mkdir()
    parents = {
        pathlib.PurePath(o).parents[i].as_posix() for o in own for i in range(len(pathlib.PurePath(o).parts) - 1)
    }

    def fill(src: pathlib.Path, dst: pathlib.Path, rel: str):
        for p in src.iterdir():
            r = f"{rel}{p.name}"
            if r in own:
                continue
            if r in parents:
                (dst / p.name).mkdir()
                fill(p, dst / p.name, r + "/")
            else:
                (dst / p.name).symlink_to(p.resolve())

    fill(clone, repo, "")
    for o in own:
        (repo / o).mkdir(parents=True, exist_ok=True)
    return repo


@pytest.mark.skipif(not AUTHORS, reason="set JAXREENACT_AUTHORS_REPO to a clone of the authors' repository")
def test_record_authors_code_every_kind(tmp_path):
    """The authors' own code on regenerated random checkpoints in their layout: record every kind, then parity."""
    from tuning_floor import smooth_image

    clone = pathlib.Path(AUTHORS)
    repo = link_tree(clone, tmp_path / "authors", ("pretrained_models", "libs/DECA/data"))
    pm, dd = repo / "pretrained_models", repo / "libs/DECA/data"
    for name, path, one in (("stylegan2_vox256", pm / "stylegan-voxceleb.pt", None),
                            ("direction_matrix", pm / "A_matrix.pt", None),
                            ("lpips_perceptual", pm / "alexnet-owt-7be5be79.pth", "alexnet-owt-7be5be79.pth"),
                            ("lpips_perceptual", pm / "alex.pth", "alex.pth"),
                            ("irse50_arcface", pm / "model_ir_se50.pth", None),
                            ("e4e_vox256", pm / "e4e-voxceleb.pt", "e4e_official.pt"),  # their layout of the two
                            ("deca_coarse", dd / "deca_model.tar", "deca_model.tar"),
                            ("deca_coarse", dd / "generic_model.pkl", "generic_model_chumpy.pkl"),  # as FLAME's
                            ("deca_coarse", dd / "landmark_embedding.npy", "landmark_embedding.npy")):  # fmt: skip
        goldens.write_checkpoint(name, path, file=one)
    from PIL import Image

    rng = np.random.default_rng(5)
    for name in ("source.png", "driving.png"):
        Image.fromarray(smooth_image(rng)[0].transpose(1, 2, 0)).save(tmp_path / name)
    out = tmp_path / "rec"
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(pathlib.Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
    )
    rec = subprocess.run([sys.executable, "-m", "jaxreenact.parity", "record", "--authors-repo", str(repo), "--source",
                          str(tmp_path / "source.png"), "--driving", str(tmp_path / "driving.png"), "--out",
                          str(out), "--tune-steps", "2"],
                         capture_output=True, text=True, env=env)  # fmt: skip
    assert rec.returncode == 0, rec.stderr[-3000:]
    folders = sorted(out.iterdir())
    assert [p.name for p in folders] == ["deca_coarse", "direction_matrix", "e4e_vox256", "generator_tuning",
                                         "irse50_arcface", "lpips_perceptual", "reenact_frames", "stylegan2_vox256",
                                         "train_step_mixed", "train_step_paired",
                                         "train_step_synthetic"]  # fmt: skip
    with np.load(out / "reenact_frames/inputs.npz") as z:  # the source and the driving frame, as given
        assert np.array_equal(z["driving_u8"][0].transpose(1, 2, 0), np.asarray(Image.open(tmp_path / "driving.png")))
        assert z["boxes_driving"].shape == (1, 4) and z["wplus"].shape == (1, 14, 512)
    with np.load(out / "train_step_paired/inputs.npz") as z:  # the pair (source, driving) and their e4e codes
        assert np.array_equal(
            z["source_img_u8"][0, 0].transpose(1, 2, 0), np.asarray(Image.open(tmp_path / "source.png"))
        )
        assert np.array_equal(
            z["target_img_u8"][0, 0].transpose(1, 2, 0), np.asarray(Image.open(tmp_path / "driving.png"))
        )
    with np.load(out / "train_step_synthetic/inputs.npz") as z:  # every draw of two steps recorded
        assert (
            z["z_source"].shape == (2, 4, 512) and z["rand_u"].shape == (2, 2) and z["target_indices"].shape == (2, 2)
        )
    for f in folders[4:6]:  # the loss kinds ran on the user's two images
        with np.load(f / "inputs.npz") as z:
            img = z["img_u8" if f.name == "irse50_arcface" else "x_u8"]
        assert np.array_equal(img[1].transpose(1, 2, 0), np.asarray(Image.open(tmp_path / "driving.png")))
    stand_ins = json.loads((out / "deca_coarse/spec.json").read_text())["stand_ins"]
    for name in ("yacs", "kornia", "pytorch3d", "chumpy"):  # each stood in (and said so) only where it is missing
        assert (name in stand_ins) == (importlib.util.find_spec(name) is None), name
    if "chumpy" in stand_ins:  # the stand-in's FLAME arrays, checked against the project's own reader
        assert re.search(r"load_flame: max abs [0-9.e-]+$", stand_ins["chumpy"])
        assert float(stand_ins["chumpy"].rsplit(" ", 1)[1]) < 1e-6
    res = subprocess.run([sys.executable, "-m", "jaxreenact.parity", *map(str, folders), "--weights", str(repo),
                          "--no-progress"], capture_output=True, text=True, env=env)  # fmt: skip
    print(res.stdout)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    rows = [ROW.match(line) for line in res.stdout.splitlines()]
    assert sum(1 for m in rows if m and m.group(1) != "name") == sum(
        len(json.loads((f / "spec.json").read_text())["expected"]) for f in folders
    )
    assert sum(1 for line in res.stdout.splitlines() if TIME.match(line)) == len(folders)


def test_deca_stand_ins_only_where_missing(tmp_path):
    """yacs, kornia, pytorch3d and chumpy are stood in only when their import fails, behave as their DECA uses
    them (a CfgNode with attributes and a deep clone; the renderer's functions refuse to run, kornia's warp runs),
    and are gone from sys.modules after the recorder's block."""
    from converters.upstream_record import Upstream

    missing = {n for n in ("yacs", "kornia", "pytorch3d", "chumpy") if importlib.util.find_spec(n) is None}
    with Upstream(standin_repo(tmp_path), log=lambda line: None) as up:
        up.deca_imports()
        assert {n for n in missing if n in up.stand_ins} == missing
        assert not {"yacs", "kornia", "pytorch3d", "chumpy"} - missing & set(up.stand_ins)
        if "yacs" in missing:
            CN = importlib.import_module("yacs.config").CfgNode  # the stand-in (yacs is the authors' dependency)

            cfg = CN()
            cfg.model = CN()
            cfg.model.n_shape = 100
            other = cfg.clone()
            other.model.n_shape = 7
            assert cfg.model.n_shape == 100 and cfg.get("model")["n_shape"] == 100 and other.model.n_shape == 7
            with pytest.raises(AttributeError):
                _ = cfg.n_exp
        if "pytorch3d" in missing:
            rasterize_meshes = importlib.import_module("pytorch3d.renderer.mesh").rasterize_meshes

            with pytest.raises(RuntimeError, match="stand-in"):
                rasterize_meshes(None)
        if "kornia" in missing:  # a working warp (test_kornia_stand_in_is_the_deca_crop checks its values)
            kornia = importlib.import_module("kornia")
            x = torch.arange(64.0).view(1, 1, 8, 8)  # the identity at the same size samples every pixel centre
            assert torch.allclose(kornia.warp_affine(x, torch.eye(3)[None, :2], dsize=(8, 8)), x, atol=1e-5)
    assert not missing & set(sys.modules)


def test_kornia_stand_in_is_the_deca_crop():
    """The recorder's kornia 0.4.1 `warp_affine` (used where kornia is not installed) crops as the port's DECA crop
    does (checked against the shipped goldens made with the real kornia); where kornia is installed, bit for bit
    as kornia itself."""
    import jax
    import jax.numpy as jnp
    from tuning_floor import smooth_image

    from converters.upstream_record import kornia_warp_affine
    from jaxreenact.face import deca_crop

    rng = np.random.default_rng(3)  # face-like smooth images, as the goldens' crops (their tolerance: 5e-5)
    x = np.concatenate([smooth_image(rng) for _ in range(2)]).transpose(0, 2, 3, 1).astype(np.float32) / 127.5 - 1
    boxes = np.array([[52.3, 70.9, 201.4, 230.2], [40.0, 95.5, 180.25, 210.0]])
    theta = deca_crop.crop_matrix_from_box(boxes)
    with jax.default_matmul_precision("highest"):
        want = np.asarray(deca_crop.deca_input(jnp.asarray(x), jnp.asarray(theta)))  # NHWC in [0, 1]
    x255 = torch.from_numpy(((np.clip(x, -1, 1) + 1) / (2 + 1e-5) * 255).transpose(0, 3, 1, 2).copy())
    warp = kornia_warp_affine(torch)
    got = warp(x255, torch.from_numpy(theta)[:, :2, :], dsize=(224, 224)) / 255.0
    # float32 sampling positions differ in the last bits (the shipped goldens grade crops at 5e-5); kornia's own
    # conventions matter far more: align_corners=True instead, or a (size) normaliser, moves a pixel by ~1e-2
    assert np.abs(got.numpy().transpose(0, 2, 3, 1) - want).max() < 1e-4
    if importlib.util.find_spec("kornia") is not None:  # the real one, where the authors' requirement is installed
        kornia = importlib.import_module("kornia")  # theirs, not ours: probed, not declared
        real = kornia.warp_affine(x255, torch.from_numpy(theta)[:, :2, :], dsize=(224, 224)) / 255.0
        assert torch.equal(got, real)


def test_detector_stand_in_and_driving_frames(tmp_path):
    """Without face_alignment's weights on disk, DECA's detector is the fixed-box stand-in (said in stand_ins) and
    every box it hands out is recorded; --driving reads an image, a folder (sorted) or a video."""
    from PIL import Image
    from tuning_floor import smooth_image

    from converters.upstream_record import FAN_BOX, Detector, driving_frames
    from converters.upstream_record import Upstream as Up

    with Up(standin_repo(tmp_path), log=lambda line: None) as up:
        det = Detector(up)
        assert det.real is None and det.boxes == []
        assert str(list(FAN_BOX)) in up.stand_ins["FAN (DECA's face detector)"]
        assert det().run(np.zeros((256, 256, 3), np.uint8)) == (list(FAN_BOX), "kpt68") and det.boxes == [list(FAN_BOX)]
    rng = np.random.default_rng(1)
    frames = [smooth_image(rng)[0].transpose(1, 2, 0) for _ in range(3)]
    (tmp_path / "d").mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(tmp_path / "d" / f"{2 - i:03d}.png")  # sorted by name: reversed order
    src = tmp_path / "d" / "000.png"
    got, note = driving_frames(src, tmp_path / "d", 2)
    assert got.shape == (2, 3, 256, 256) and np.array_equal(got[0].transpose(1, 2, 0), frames[2]) and "2 frame" in note
    got, _ = driving_frames(src, src, 3)
    assert got.shape == (1, 3, 256, 256)
    got, note = driving_frames(src, None, 3)  # two views of the source: a zoom, then its mirror image
    assert got.shape == (2, 3, 256, 256)
    assert np.array_equal(got[1].transpose(1, 2, 0), frames[2][:, ::-1]) and "mirrored" in note
    from jaxreenact.common.errors import UserError
    from jaxreenact.data.video import read_video, write_video

    write_video(tmp_path / "v.mp4", np.stack(frames), fps=25)
    with pytest.raises(UserError, match="give a face crop"):  # converters decode no video themselves
        driving_frames(src, tmp_path / "v.mp4", 2)
    got, note = driving_frames(src, tmp_path / "v.mp4", 2, read_video)
    assert got.shape == (2, 3, 256, 256) and "first 2 frame" in note
    assert np.abs(got[0].astype(int) - frames[0].transpose(2, 0, 1)).mean() < 12  # lossy video, same picture


def test_record_pipeline_kinds_need_the_authors_programs(tmp_path):
    """The reenactment and training kinds run the authors' run_inference.py / run_trainer.py; a clone without them
    is said in one line, before any file is read; so is an empty checkpoint file; and one of their modules that does
    not import (a partial clone, a requirement of theirs missing) is one line too, not a traceback."""
    from PIL import Image

    from converters.upstream_record import FILES, NEEDS

    repo = standin_repo(tmp_path)
    for name in NEEDS["train_step_mixed"] | NEEDS["reenact_frames"]:
        path = repo / FILES[name]
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
    Image.new("RGB", (256, 256), (120, 90, 80)).save(tmp_path / "s.png")
    src = ("--source", tmp_path / "s.png")
    code, _, err = run("record", "--authors-repo", repo, "--out", tmp_path / "o", *src, "train_step_mixed")
    assert code == 2 and "no run_trainer.py (the reenactment and training kinds run the authors' programs" in err
    code, _, err = run("record", "--authors-repo", repo, "--out", tmp_path / "o", *src, "reenact_frames")
    assert code == 2 and f"{repo / FILES['deca']}: an empty file" in err and len(err.strip().splitlines()) == 1, err
    (repo / "run_inference.py").write_text("import libs.not_in_this_clone\n")  # a partial clone
    for name in NEEDS["reenact_frames"]:
        if (repo / FILES[name]).stat().st_size == 0:
            head = b"\x93NUMPY" if FILES[name].endswith(".npy") else b"PK\x03\x04"
            (repo / FILES[name]).write_bytes(head)  # past the header check; never read
    code, _, err = run("record", "--authors-repo", repo, "--out", tmp_path / "o", *src, "reenact_frames")
    last = err.strip().splitlines()[-1]  # after the recorder's progress line: the error, no traceback
    assert code == 2 and "Traceback" not in err and last.startswith("error (jaxreenact.parity)"), err
    assert "their run_inference does not import: it is not in the clone" in last, err
    assert not (tmp_path / "o").exists()


def test_record_reenact_frames_standin_then_parity(tmp_path):
    """The reenactment through the stand-in tree's `Inference.run_reenactment` (DECA from tests/deca_torch_ref, the
    golden's random DECA files, a 32² generator): the recorder's plumbing (its hooks on the module globals, the crop
    recorder, the detector's boxes, the driving folder) writes a folder whose every row the port then passes."""
    from deca_fixtures import deca_files
    from PIL import Image
    from tuning_floor import smooth_image

    repo, out = standin_repo(tmp_path), tmp_path / "rec"
    (repo / "libs/DECA/data").mkdir(parents=True)
    for name in ("deca_model.tar", "generic_model.pkl", "landmark_embedding.npy"):
        (repo / "libs/DECA/data" / name).symlink_to(deca_files() / name)
    (repo / "libs/configs").mkdir()
    shutil.copy(pathlib.Path(__file__).parent / "data/ranges_voxceleb.npy", repo / "libs/configs")
    sys.path.insert(0, str(repo))
    try:
        enc = importlib.import_module("libs.gan.encoder4editing.psp_encoders").Encoder4Editing(50, "ir_se", 32)
    finally:
        sys.path.remove(str(repo))
        for name in [n for n in sys.modules if n == "libs" or n.startswith("libs.")]:
            del sys.modules[name]
    torch.save({"e": enc.state_dict()}, repo / "pretrained_models/e4e-voxceleb.pt")
    rng = np.random.default_rng(11)
    (tmp_path / "drive").mkdir()
    for i in range(2):
        Image.fromarray(smooth_image(rng)[0].transpose(1, 2, 0)).save(tmp_path / "drive" / f"{i}.png")
    Image.fromarray(smooth_image(rng)[0].transpose(1, 2, 0)).save(tmp_path / "source.png")
    code, _, err = run("record", "--authors-repo", repo, "--out", out, "--source", tmp_path / "source.png",
                       "--driving", tmp_path / "drive", "reenact_frames")  # fmt: skip
    assert code == 0, err
    spec = json.loads((out / "reenact_frames/spec.json").read_text())
    assert "FAN (DECA's face detector)" in spec["stand_ins"] and spec["direction_coefficients"]["count_pose"] == 4
    with np.load(out / "reenact_frames/inputs.npz") as z:
        assert z["driving_u8"].shape == (2, 3, 256, 256) and z["boxes_driving"].shape == (2, 4)
        assert np.array_equal(z["driving_u8"][1].transpose(1, 2, 0), np.asarray(Image.open(tmp_path / "drive/1.png")))
        assert z["wplus"].shape == (1, 8, 512)
    code, stdout, err = run(out / "reenact_frames", "--weights", repo, "--no-progress")
    t = tables(stdout)["reenact_frames"]
    assert code == 0, stdout + err
    assert set(t) == set(spec["expected"]) and len(t) == 18 and all(r[3] == "PASS" for r in t.values())
    assert sum(1 for line in stdout.splitlines() if TIME.match(line)) == 1
