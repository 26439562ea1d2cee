"""The preprocess program end to end on the shared video: with converted random-weight S3FD/FAN (which find no
face: the no-face policy and summary), and with an injected fake locator so the crop path and every output run."""

from __future__ import annotations

import json
import pathlib
import shutil

import fa_fixtures
import numpy as np
import pytest
from PIL import Image

from converters import fan as conv_fan
from converters import sfd as conv_sfd
from jaxreenact import preprocess
from jaxreenact.face import crop as crop_lib
from jaxreenact.face.pipeline import FacePreprocessor, Located, choose_face

EXAMPLES = pathlib.Path(__file__).parents[1] / "jaxreenact" / "resources" / "examples"
VIDEO = EXAMPLES / "driving_lWOTF8SdzJw_2614-2801.mp4"
PHOTO = EXAMPLES / "source_0002775.png"


class FakeLocate:
    """Stands in for S3FD + FAN: frame k of the schedule has 0, 1 or 2 confident faces; the chosen face's
    landmarks are a fixed 68-point cloud (scaled to the working width) shifted by k pixels."""

    def __init__(self, schedule):
        self.schedule = schedule
        self.k = 0
        self.batches = []

    def __call__(self, images):
        self.batches.append(len(images))
        out = []
        for img in images:
            n = self.schedule[self.k % len(self.schedule)]
            s = img.shape[1] / 1000.0
            pts = np.random.default_rng(0).uniform([420, 180], [580, 380], (68, 2)) * s + self.k
            box = np.array([400 * s, 160 * s, 600 * s, 400 * s, 0.999], np.float32)
            dets = np.stack([box] * n) if n else np.zeros((0, 5), np.float32)
            out.append(Located(dets, n, box if n else None, pts if n else None))
            self.k += 1
        return out


def _run(tmp_path, *extra, locate=None, src=VIDEO):
    out = tmp_path / "out"
    args = [str(src), "--out", str(out), "--sfd", "unused", "--fan", "unused", "--no-progress", *extra]
    summary = preprocess.main(args, locate=locate)
    return out, summary


def test_skip_policy_crops_and_reports(tmp_path):
    fake = FakeLocate([1, 0, 2, 1, 0])
    out, summary = _run(tmp_path, "--max-frames", "5", "--width", "320", "--batch-size", "2", locate=fake)
    assert fake.batches == [2, 2, 1]
    assert (summary["frames"], summary["ok"], summary["held"], summary["skipped"]) == (5, 3, 0, 2)
    assert summary["no_face"] == ["000001", "000004"] and summary["multiple_faces"] == ["000002"]
    assert json.loads((out / "summary.json").read_text()) == summary
    crops = sorted(p.name for p in (out / "crops").iterdir())
    assert crops == ["000000.png", "000002.png", "000003.png"]
    assert np.asarray(Image.open(out / "crops" / "000000.png")).shape == (256, 256, 3)
    z = np.load(out / "faces.npz")
    assert list(z["status"]) == ["ok", "no_face", "ok", "ok", "no_face"]
    assert z["landmarks"].shape == (5, 68, 2) and np.isnan(z["landmarks"][1]).all()
    np.testing.assert_allclose(z["landmarks_original"][0], z["landmarks"][0] * 1280 / 320, rtol=1e-6)
    assert z["crop_boxes"].shape == (5, 4) and (z["crop_boxes"][1] == -1).all()
    assert z["scale"][0] == 320 / 1280


def test_hold_policy_and_smoothing(tmp_path):
    out, summary = _run(
        tmp_path, "--max-frames", "4", "--width", "320", "--on-missing", "hold", "--smooth-box",
        locate=FakeLocate([0, 1, 0, 1]),
    )  # fmt: skip
    assert (summary["ok"], summary["held"], summary["skipped"]) == (2, 1, 1)
    assert summary["no_face"] == ["000000"] and summary["held_frames"] == ["000002"]
    assert summary["settings"]["smooth_box"] == 0.6
    z = np.load(out / "faces.npz")
    np.testing.assert_array_equal(z["crop_boxes"][2], z["crop_boxes"][1])  # held
    assert sorted(p.name for p in (out / "crops").iterdir()) == ["000001.png", "000002.png", "000003.png"]


def test_smoothing_moves_the_box_less():
    frames = [np.zeros((90, 160, 3), np.uint8)] * 3
    raw = FacePreprocessor(FakeLocate([1]), width=160)(frames)
    smooth = FacePreprocessor(FakeLocate([1]), width=160, smooth_box=0.8)(frames)
    assert raw[0].crop_box == smooth[0].crop_box
    assert abs(smooth[2].crop_box[0] - smooth[0].crop_box[0]) < abs(raw[2].crop_box[0] - raw[0].crop_box[0])


def test_photo_and_folder_inputs(tmp_path):
    _, s = _run(tmp_path, locate=FakeLocate([1]), src=PHOTO)
    assert (s["kind"], s["frames"], s["ok"]) == ("image", 1, 1)
    assert (tmp_path / "out" / "crops" / "source_0002775.png").exists()
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("b.png", "a.png"):
        shutil.copy(PHOTO, folder / name)
    out, s = _run(tmp_path / "f", "--width", "400", locate=FakeLocate([1, 0]), src=folder)
    assert (s["kind"], s["frames"], s["ok"], s["no_face"]) == ("folder", 2, 1, ["b"])


def test_choose_face_rules():
    dets = np.array([[0, 0, 10, 10, 0.999], [0, 0, 50, 50, 0.995], [0, 0, 20, 20, 0.9]], np.float32)
    assert choose_face(dets, "last") == (1, 2)  # the authors: last confident face in NMS order
    assert choose_face(dets, "best") == (0, 2)
    assert choose_face(dets, "largest") == (1, 2)
    assert choose_face(dets[2:], "last") == (None, 0)


def test_cli_errors_are_one_line(tmp_path, capsys):
    for src, match in ((tmp_path / "missing.mp4", "no such"), (tmp_path / "x.txt", "unknown input type")):
        if src.suffix == ".txt":
            src.write_text("x")
        with pytest.raises(SystemExit) as e:
            _run(tmp_path, locate=FakeLocate([1]), src=src)
        assert e.value.code == 2
        err = capsys.readouterr().err.strip()
        assert match in err and "\n" not in err


WIDTH = 1000


def _random_face_networks(frames_work):
    """face-alignment's S3FD and FAN (one stack) with random weights, saved as PyTorch files. S3FD's trunk is
    He-initialised (its features depend on the image); only the fc7 head scores faces, its box regression scaled
    down to stay near the anchors, and its face bias set so that every frame's best anchor scores above 0.99 while
    the others spread below and above it (several confident faces, NMS at work)."""
    import torch

    net, face_logit = fa_fixtures.face_s3fd(loc_scale=0.002, conf_scale=0.02)
    with torch.no_grad():
        x = torch.from_numpy(np.stack(frames_work).astype(np.float32)).permute(0, 3, 1, 2)  # the authors: RGB as is
        net.fc7_mbox_conf.bias[1] = 6.0 - float(face_logit(x).max(1).values.min())
    fan = fa_fixtures.random_fan(1)
    return net, fan


def _reference_face(net, fan, work):
    """The authors' detect → choose → FAN → crop box, from face-alignment's own S3FD decoding (`get_predictions`,
    `nms`), the PyTorch re-statement of their FAN crop and heatmap decoding, and `crop_using_landmarks` by hand."""
    import torch
    import torch.nn.functional as F
    from face_alignment.detection.sfd.bbox import nms
    from face_alignment.detection.sfd.detect import get_predictions

    import torch_face_ref as tfr

    with torch.no_grad():
        olist = net(torch.from_numpy(work[None].astype(np.float32)).permute(0, 3, 1, 2))
    olist = [F.softmax(o, dim=1) if i % 2 == 0 else o for i, o in enumerate(olist)]
    d = get_predictions([o.numpy() for o in olist], 1)[0]
    d = d[d[:, 4] > 0.05]
    d = d[nms(d, 0.3)]
    d = d[d[:, 4] > 0.5]
    confident = [k for k in range(len(d)) if d[k, 4] > 0.99]
    box = d[confident[-1]]  # the last confident face in NMS order, as the authors
    x1, y1, x2, y2 = (np.float32(v) for v in box[:4])
    center = np.array([(x2 + x1) / 2, (y2 + y1) / 2 - (y2 - y1) * np.float32(0.12)], np.float32)
    scale = np.float32((x2 - x1 + y2 - y1) / np.float32(195.0))
    with torch.no_grad():
        hm = fan(tfr.fan_crop(work, center, scale) / 255.0)[-1]
    lm = tfr.fan_preds(hm, center[None], scale[None])[1][0].numpy()
    c = np.round((lm.min(0) + lm.max(0)) / 2).astype(int)
    size = int(max(np.ptp(lm[:, 0]), np.ptp(lm[:, 1])))
    c[1] -= size // 6
    return box, len(confident), lm, (c[0] - size, c[1] - size, c[0] + size, c[1] + size)


@pytest.mark.torch
def test_end_to_end_with_random_weight_networks_that_find_a_face(tmp_path):
    """Fresh-clone path on the shared video: random-weight S3FD/FAN saved by PyTorch, converted with the CLIs; the
    biased S3FD finds faces, so FAN and the crop run; each frame's box, face count, landmarks, crop box and crop are
    checked against the reference of `_reference_face` on the same working image (cv2 INTER_AREA, width 256)."""
    pytest.importorskip("torch", reason="the random-weight checkpoints are written by PyTorch")
    pytest.importorskip("face_alignment", reason="face-alignment's modules give the checkpoint layouts")
    cv2 = pytest.importorskip("cv2", reason="OpenCV gives the authors' working image")
    import torch

    from jaxreenact.data import video as video_lib

    frames = list(video_lib.iter_frames(VIDEO, max_frames=3))
    h, w = frames[0].shape[:2]
    work = [cv2.resize(f, (WIDTH, int(h * WIDTH / w)), interpolation=cv2.INTER_AREA) for f in frames]
    net, fan = _random_face_networks(work)
    torch.save(net.state_dict(), tmp_path / "s3fd.pth")
    torch.save(fan.state_dict(), tmp_path / "fan.pth.tar")
    conv_sfd.main([str(tmp_path / "s3fd.pth"), str(tmp_path / "sfd")])
    conv_fan.main([str(tmp_path / "fan.pth.tar"), str(tmp_path / "fan")])
    out = tmp_path / "out"
    args = [str(VIDEO), "--out", str(out), "--sfd", str(tmp_path / "sfd"), "--fan", str(tmp_path / "fan")]
    summary = preprocess.main([*args, "--max-frames", "3", "--width", str(WIDTH), "--batch-size", "2", "--no-progress"])
    assert summary["frames"] == 3 and summary["kind"] == "video" and summary["has_audio"]
    assert summary["ok"] == 3 and summary["skipped"] == 0
    z = np.load(out / "faces.npz")
    assert list(z["status"]) == ["ok"] * 3
    for i in range(3):
        box, n_conf, lm, cbox = _reference_face(net, fan, work[i])
        assert z["n_faces"][i] == n_conf
        np.testing.assert_allclose(z["boxes"][i][4], box[4], atol=1e-4)
        np.testing.assert_allclose(z["boxes"][i][:4], box[:4], atol=5e-3)  # float32 pixels
        np.testing.assert_allclose(z["landmarks"][i], lm, atol=1e-3)  # integer pixels, as the authors
        assert tuple(z["crop_boxes"][i]) == cbox
        # The crop: that box of the working image, FFHQ-padded where it leaves the frame (checked against the
        # authors' code in test_crop.py), resized to 256² with PIL bicubic; the program's working image is its own
        # INTER_AREA, within one grey level of OpenCV's.
        crop = np.asarray(Image.open(out / "crops" / f"{i:06d}.png")).astype(int)
        assert np.abs(crop - crop_lib.crop_face(work[i], lm, box=cbox)).max() <= 1
    assert any(n > 1 for n in z["n_faces"])  # several confident faces: the choice among them was exercised


def test_tiny_locator_finds_no_face_in_a_blank_image(tmp_path):
    """`--tiny` rehearses the no-face path: flat and nearly black frames have no face, a photo has one."""
    from jaxreenact.face.pipeline import FixedLocate, blank

    photo = np.asarray(Image.open(PHOTO).convert("RGB"))
    flat = np.full((240, 320, 3), 128, np.uint8)
    dark = np.random.default_rng(0).integers(0, 8, (240, 320, 3), dtype=np.uint8)
    assert [blank(x) for x in (photo, flat, dark)] == [False, True, True]
    locs = FixedLocate()([flat, dark])
    assert all(loc.landmarks is None and loc.n_confident == 0 for loc in locs)
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(flat).save(folder / "a_flat.png")
    Image.fromarray(dark).save(folder / "b_dark.png")
    shutil.copy(PHOTO, folder / "c_photo.png")
    out = tmp_path / "out"
    s = preprocess.main([str(folder), "--out", str(out), "--tiny", "--no-progress", "--width", "320"])
    assert s["no_face"] == ["a_flat", "b_dark"] and s["ok"] == 1 and s["settings"]["tiny_fake_locator"]
    assert sorted(p.name for p in (out / "crops").iterdir()) == ["c_photo.png"]


def test_a_video_that_breaks_mid_stream_keeps_the_frames_that_decode(tmp_path, caplog):
    from jaxreenact.data import video as video_lib

    frames = [np.full((64, 96, 3), 20 + 7 * i, np.uint8) for i in range(30)]
    frames = [f + np.random.default_rng(i).integers(0, 30, f.shape, dtype=np.uint8) for i, f in enumerate(frames)]
    full = tmp_path / "full.mp4"
    video_lib.write_video(full, frames, fps=10)  # +faststart: the index is at the front, the frames after it
    data = full.read_bytes()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(data[: len(data) // 2])
    info = video_lib.probe_video(broken)
    assert info.expected_frames == 30 and 0 < info.num_frames < 30 and info.broken
    assert "breaks after" in info.broken_note() and not video_lib.probe_video(full).broken
    caplog.set_level("WARNING", logger="jaxreenact")
    s = preprocess.main([str(broken), "--out", str(tmp_path / "o"), "--tiny", "--no-progress", "--width", "96"])
    assert s["frames"] == info.num_frames and f"using the {info.num_frames} frames" in s["input_note"]
    assert any("breaks after" in r.message for r in caplog.records)


def test_inputs_and_every_missing_checkpoint_before_any_network(tmp_path, capsys):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "noise.mp4").write_bytes(b"not a video at all" * 10)
    (tmp_path / "folder.mp4").mkdir()
    for name, match in (("empty.mp4", "is empty"), ("noise.mp4", "not a readable video"),
                        ("folder.mp4", "holds no image files")):  # fmt: skip
        with pytest.raises(SystemExit) as e:
            preprocess.main([str(tmp_path / name), "--out", str(tmp_path / "o"), "--no-progress",
                             "--sfd", str(tmp_path / "nope_sfd"), "--fan", str(tmp_path / "nope_fan")])  # fmt: skip
        err = capsys.readouterr().err.strip()
        assert e.value.code == 2 and match in err and "\n" not in err, err
    with pytest.raises(SystemExit):
        preprocess.main([str(PHOTO), "--out", str(tmp_path / "o"), "--sfd", str(tmp_path / "nope_sfd"),
                         "--fan", str(tmp_path / "nope_fan")])  # fmt: skip
    err = capsys.readouterr().err
    assert "nope_sfd" in err and "nope_fan" in err and "converters.sfd" in err and "converters.fan" in err
    assert not (tmp_path / "o").exists()


def test_an_unreadable_image_in_a_folder_is_skipped_and_reported(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    shutil.copy(PHOTO, folder / "a.png")
    shutil.copy(PHOTO, folder / "c.png")
    (folder / "b.png").write_bytes(PHOTO.read_bytes()[:4000])  # truncated
    s = preprocess.main([str(folder), "--out", str(tmp_path / "o"), "--tiny", "--no-progress", "--width", "320"])
    assert s["frames"] == 2 and s["ok"] == 2 and len(s["unreadable"]) == 1 and "b.png" in s["unreadable"][0]
    (folder / "a.png").write_bytes(b"")
    (folder / "c.png").write_bytes(b"")
    with pytest.raises(SystemExit) as e:
        preprocess.main([str(folder), "--out", str(tmp_path / "o2"), "--tiny", "--no-progress"])
    assert e.value.code == 2
