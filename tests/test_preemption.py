"""SIGTERM / SIGINT (issue 16): training checkpoints the current step and resumes bit-identical, with one metrics line
and one TensorBoard record per step; invert, evaluate and data.build keep their finished work and resume; the
programs end in one line with exit status 143 / 130. Signals are real (`os.kill` of this process from inside the
run; the 2-process test in test_multiprocess.py signals a child process)."""

import json
import os
import signal
import struct

import jax
import numpy as np
import pytest

from configs import eval as eval_config
from configs import synthetic
from jaxreenact import evaluate, invert
from jaxreenact.common import distributed, errors, preemption
from jaxreenact.data import build, fake
from jaxreenact.data import voxceleb as vx
from jaxreenact.data.voxceleb import builder
from jaxreenact.evaluation import protocol
from jaxreenact.inference import inversion
from jaxreenact.training import loop, stages


class Crash(Exception):
    pass


def tiny(**kw):
    c = synthetic.get_config("tiny")
    with c.unlocked():
        c.train.steps, c.train.checkpoint_every, c.train.eval_every, c.train.log_every = 6, 3, 3, 1
        c.mesh.data = 4
        for k, v in kw.items():
            setattr(c.train, k, v)
    return c


def lines(workdir):
    return [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]


def tb_records(path):
    """(step, scalar tags or 'purge') of a TensorBoard event file (TFRecord framing, tensorboardX's protos)."""
    from tensorboardX.proto import event_pb2

    data, out, i = path.read_bytes(), [], 0
    while i < len(data):
        (n,) = struct.unpack("<Q", data[i : i + 8])
        ev = event_pb2.Event.FromString(data[i + 12 : i + 12 + n])
        i += 12 + n + 4
        if ev.HasField("session_log") and ev.session_log.status == ev.session_log.START:
            out.append((ev.step, "purge"))
        for v in ev.summary.value:
            out.append((ev.step, v.tag))
    return out


def test_sigterm_checkpoints_the_step_and_resumes_bit_identical(tmp_path):
    c = tiny()
    full = loop.train(c, tmp_path / "full", stages.build_stage, progress=False)
    work = tmp_path / "run"

    def crash(done, state):  # a hard stop (no checkpoint of step 4): lines after checkpoint 3 must go
        if done == 4:
            raise Crash

    with pytest.raises(Crash):
        loop.train(c, work, stages.build_stage, progress=False, on_step=crash)
    assert [r["step"] for r in lines(work)] == [0, 1, 2, 3, 4]

    def sigterm(done, state):  # during step 5: every process finishes it, checkpoints it and stops
        if done == 4:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(preemption.Interrupted) as e:
        loop.train(c, work, stages.build_stage, progress=False, on_step=sigterm)
    assert e.value.exit_code == 143 and "after step 5: checkpoint 5 saved" in str(e.value)
    assert sorted(int(p.name) for p in (work / "checkpoints").iterdir() if p.name.isdigit()) == [3, 5]
    resumed = loop.train(c, work, stages.build_stage, progress=False)
    for a, b in zip(jax.tree.leaves(full.params), jax.tree.leaves(resumed.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # One line per step, each the uninterrupted run's (the rate aside).
    got, want = lines(work), lines(tmp_path / "full")
    assert [r["step"] for r in got] == list(range(7))
    for r, w in zip(got, want, strict=True):
        r.pop("steps_per_s", None)
        w.pop("steps_per_s", None)
        assert r == w
    assert (work / "images" / "reenactment_0000006.png").is_file() and "val/csim" in got[6]
    # TensorBoard: each resume purges what followed its checkpoint, so a reader keeps one record per step.
    files = sorted((work / "tb").iterdir())
    assert len(files) == 3
    purges = [s for f in files[1:] for s, tag in tb_records(f) if tag == "purge"]
    assert purges == [4, 6]
    kept = {}
    for f in files:
        for s, tag in tb_records(f):
            if tag == "purge":
                kept = {k: v for k, v in kept.items() if k[0] < s}
            else:
                kept[(s, tag)] = kept.get((s, tag), 0) + 1
    assert set(kept.values()) == {1} and {s for s, _ in kept} == set(range(7))
    # A finished run is recognised (the program says so and how to continue); rerun, it validates nothing again.
    assert loop.completed_step(work, 6) == 6 and loop.completed_step(work, 7) is None
    assert loop.completed_step(tmp_path / "nothing_here", 6) is None
    again = loop.train(c, work, stages.build_stage, progress=False)
    assert int(again.step) == 6 and len(lines(work)) == 7


def test_a_second_signal_stops_at_once_and_handlers_are_restored():
    before = signal.getsignal(signal.SIGINT)
    with preemption.StopRequest() as stop:
        stop.request(signal.SIGINT)
        assert stop.signum == signal.SIGINT and distributed.agreed_max("stop", stop.signum) == signal.SIGINT
        with pytest.raises(preemption.Interrupted) as e:
            os.kill(os.getpid(), signal.SIGTERM)
        assert e.value.exit_code == 143
    assert signal.getsignal(signal.SIGINT) is before


def test_programs_end_in_one_line_with_130_or_143(capsys):
    def ctrl_c():
        raise KeyboardInterrupt

    def term():
        os.kill(os.getpid(), signal.SIGTERM)

    assert errors.report_user_errors("prog", ctrl_c) == 130
    assert errors.report_user_errors("prog", term) == 143
    with pytest.raises(SystemExit) as e:
        errors.cli_main(lambda: term())()
    assert e.value.code == 143
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "prog: interrupted by SIGINT" and err[1] == "prog: interrupted by SIGTERM" and len(err) == 3
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored


def sigterm_at(n):
    """A wrapper of `fn` that sends SIGTERM to this process at its n-th call (after the call)."""
    calls = {"n": 0}

    def wrap(fn):
        def inner(*a, **k):
            out = fn(*a, **k)
            calls["n"] += 1
            if calls["n"] == n:
                os.kill(os.getpid(), signal.SIGTERM)
            return out

        return inner

    return wrap


def test_invert_interrupted_keeps_its_latents_and_resumes(tmp_path, monkeypatch, capsys):
    d = jax.local_device_count()  # a batch is a multiple of the devices: 4 batches of d frames
    root = fake.make_fake_tree(tmp_path / "tree", n_ids=1, n_videos=d, n_frames=4, image_size=32)
    for f in root.glob("*/*/inversion/latent_codes/*.npy"):
        f.unlink()
    # SIGTERM once the second batch is computed: the first is queued to the writer thread and must be written
    # before the program exits, the second never is.
    monkeypatch.setattr(inversion, "invert_batch", sigterm_at(2)(inversion.invert_batch))
    args = [str(root), "--tiny", "--batch-size", str(d), "--no-progress"]
    with pytest.raises(SystemExit) as e:
        invert.main(args)
    assert e.value.code == 143 and "interrupted by SIGTERM" in capsys.readouterr().err
    done = list(root.glob("*/*/inversion/latent_codes/*.npy"))
    assert len(done) == d and not list(root.rglob("*.tmp"))
    monkeypatch.undo()
    report = invert.main(args)
    assert report.done_before == d and report.inverted == 3 * d


def test_evaluate_interrupted_keeps_finished_videos(tmp_path, monkeypatch):
    c = eval_config.get_config("tiny")
    with c.unlocked():
        c.eval.cross = False
    monkeypatch.setattr(protocol, "_save_npz", sigterm_at(1)(protocol._save_npz))
    assert errors.report_user_errors("jaxreenact.evaluate", evaluate.run, c, tmp_path / "ev", progress=False) == 143
    cached = list((tmp_path / "ev" / "cache").rglob("*.npz"))
    assert len(cached) == 1 and protocol._load_npz(cached[0])["status"] == "ok"
    assert not (tmp_path / "ev" / "results.json").exists()


def test_data_build_interrupted_leaves_no_partial_split_and_rebuilds(tmp_path, monkeypatch):
    root = fake.make_fake_tree(tmp_path / "root", n_ids=1, n_videos=2, n_frames=3, image_size=16)
    args = ["--root", str(root), "--out", str(tmp_path / "out"), "--image-size", "16", "--no-progress"]
    monkeypatch.setattr(builder, "load_frame", sigterm_at(2)(builder.load_frame))
    with pytest.raises(SystemExit) as e:
        build.main(args)
    assert e.value.code == 143
    assert not vx.dataset_dir(tmp_path / "out").is_dir()
    monkeypatch.undo()
    report = build.main(args)  # no --overwrite needed: nothing of the interrupted build is left
    assert report.num_examples == 6
    assert not [p for p in vx.dataset_dir(tmp_path / "out").parent.iterdir() if p.name.startswith("incomplete")]
