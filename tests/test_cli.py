"""The one flag convention (`jaxreenact.common.cli`): config paths found from any folder, every config mistake in one
line with a suggestion, the shared flags mapped onto the config, shipped paths and `example`, quiet logging."""

from __future__ import annotations

import importlib
import logging
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

from jaxreenact.common import cli
from jaxreenact.common.errors import UserError

ROOT = pathlib.Path(__file__).resolve().parents[1]


def prep(*args, batch="train.batch_size"):
    return cli.prepare_config_argv(["prog", *args], "prog", batch)


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """Run from a folder that is not the repository."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_config_path_resolves_from_another_folder(elsewhere):
    argv = prep("--config=configs/mixed.py:tiny", "--workdir=w", "--config.train.steps=3")
    assert argv[1] == f"--config={ROOT / 'configs' / 'mixed.py'}:tiny"
    assert argv[2:] == ["--workdir=w", "--config.train.steps=3"]
    # a config in the current folder wins over the shipped one
    (elsewhere / "configs").mkdir()
    (elsewhere / "configs" / "mine.py").write_text("import ml_collections\n\ndef get_config():\n"
                                                  "    c = ml_collections.ConfigDict()\n    c.a = 1\n    return c\n")  # fmt: skip
    assert prep("--config", "configs/mine.py")[1] == "--config=configs/mine.py"


def test_shared_flags_map_onto_the_config(elsewhere):
    argv = prep("--config=configs/synthetic.py", "--tiny", "--seed", "3", "--batch-size=8", "--no_progress",
                "--workdir=w")  # fmt: skip
    assert argv[1].endswith("synthetic.py:tiny")
    assert "--config.seed=3" in argv and "--config.train.batch_size=8" in argv and "--no-progress" in argv
    assert "--config.eval.batch_size=2" in prep(
        "--config=configs/eval.py", "--batch-size", "2", batch="eval.batch_size"
    )


@pytest.mark.parametrize(
    "args, match",
    [
        (
            ["--config=configs/synthetc.py:tiny"],
            r"no such config file; did you mean --config=configs/synthetic.py:tiny\?",
        ),
        (["--config=configs"], "is a folder, not a config file"),
        (["--config=configs/synthetic.py:tny"], r"unknown variant 'tny'"),
        (["--config=configs/synthetic.py", "--config.train.stepz=3"], r"did you mean --config.train.steps\?"),
        (["--config=configs/synthetic.py", "--config.nothing_like_it=1"], "no such config field"),
        (["--config=configs/eval.py:tiny", "--tiny", "--config.eval.batch_sise=2"], r"--config.eval.batch_size\?"),
        (["--config=configs/synthetic.py:other", "--tiny"], "two variants"),
        (["--config=configs/synthetic.py", "--seed=x"], "not an integer"),
    ],
)
def test_config_mistakes_are_one_line_with_a_suggestion(elsewhere, args, match):
    with pytest.raises(UserError, match=match) as e:
        prep(*args)
    assert "\n" not in str(e.value)


def test_shipped_paths_and_the_example_word(elsewhere):
    p = "jaxreenact/resources/examples/source_0002775.png"
    assert cli.shipped_path(p) == ROOT / p and cli.shipped_path(p).is_file()
    assert cli.shipped_path("runs/x.png") == pathlib.Path("runs/x.png")  # not shipped: left as given
    assert cli.input_path("example", cli.EXAMPLE_DRIVING) == str(cli.EXAMPLE_DRIVING)
    assert cli.EXAMPLE_SOURCE.is_file() and cli.EXAMPLE_DRIVING.is_file()


def test_output_folder_checks(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="is a file, not a folder"):
        cli.check_out_dir(tmp_path / "f")
    with pytest.raises(UserError, match="is a file, so the folder cannot be made"):
        cli.check_out_dir(tmp_path / "f" / "sub")
    with pytest.raises(UserError, match="is a folder; give a file name"):
        cli.check_out_file(tmp_path)
    assert cli.check_out_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # checking creates nothing


def test_quiet_logging_unless_verbose(capsys):
    cli.setup_logging(False)
    logging.getLogger("orbax.checkpoint").info("noise")
    logging.getLogger("jax._src.xla_bridge").info("noise")
    logging.getLogger("jaxreenact.weights").info("loading networks: ...")
    err = capsys.readouterr().err
    assert "noise" not in err and err.strip() == "loading networks: ..."
    cli.setup_logging(True)
    assert logging.getLogger("orbax").isEnabledFor(logging.INFO)
    cli.setup_logging(False)


SCRIPT = textwrap.dedent(
    """
    import contextlib, importlib, io, pathlib, sys
    from absl import flags
    from jaxreenact.common import cli
    program, batch = sys.argv[1:3]
    prog = importlib.import_module(program)
    pathlib.Path("afile").write_text("x")
    if program.endswith("evaluate"):  # a one-frame test tree
        from PIL import Image
        pathlib.Path("tree/id0/vid0/frames_cropped").mkdir(parents=True)
        Image.new("RGB", (256, 256), (90, 120, 150)).save("tree/id0/vid0/frames_cropped/000000.png")
    for case in sys.argv[3:]:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            try:
                cli.run_config_program(prog.main, batch, argv=["prog"] + case.split())
                rc = 0
            except SystemExit as e:
                rc = e.code
        print(rc, err.getvalue().strip().replace(chr(10), " | "))
        for name in [n for n in flags.FLAGS if n.startswith("config.")]:  # one run per process in real life
            delattr(flags.FLAGS, name)
    print("left:", sorted(p.name for p in pathlib.Path(".").iterdir()))
    """
)


def _run_cases(cwd, program, batch, cases) -> list[str]:
    """Each case through the real program's entry (absl parsing included), in one fresh process run from `cwd`."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}  # one device
    env["PYTHONPATH"] = str(ROOT)
    cmd = [sys.executable, "-c", SCRIPT, program, batch, *cases]
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()


def test_training_mistakes_end_in_one_line_and_create_nothing(tmp_path):
    """The real program's path (absl parsing included), run from another folder."""
    cases = [
        "--config=configs/synthetc.py:tiny --workdir=w1",
        "--config=configs/synthetic.py:tny --workdir=w2",
        "--config=configs/synthetic.py:tiny --workdir=w3 --config.train.stepz=3",
        "--config=configs/synthetic.py:tiny --config.train.steps=abc --workdir=w4",
        "--config=configs/synthetic.py:tiny",
        "--config=configs/synthetic.py:tiny --workdir=afile",
        "--config=configs/synthetic.py:tiny --workdri=w8",
        "--config=configs/synthetic.py --workdir=w7",
    ]
    lines = _run_cases(tmp_path, "jaxreenact.train", "train.batch_size", cases)
    out = dict(zip(cases, lines))
    for case in cases[:-1]:
        rc, msg = out[case].split(" ", 1)
        assert rc == "2" and msg.startswith("error (jaxreenact.train): ") and " | " not in msg, out[case]
    assert "did you mean --config=configs/synthetic.py:tiny?" in out[cases[0]]
    assert "unknown variant 'tny'" in out[cases[1]]
    assert "did you mean --config.train.steps?" in out[cases[2]]
    assert "config.train.steps" in out[cases[3]] and "abc" in out[cases[3]]
    assert "--workdir is missing" in out[cases[4]]
    assert "afile: is a file" in out[cases[5]]
    assert "unknown flag --workdri: did you mean --workdir?" in out[cases[6]]
    # missing weights: one message listing every checkpoint with its command (several lines, exit 2)
    assert out[cases[-1]].startswith("2 error (jaxreenact.train): missing converted weights")
    assert "converters.all" in out[cases[-1]] and "add --tiny" in out[cases[-1]]
    assert lines[-1] == "left: ['afile']"  # no workdir was created by any failed start


def test_evaluation_mistakes_end_in_one_line_and_create_nothing(tmp_path):
    cases = [
        "--config=configs/evl.py:tiny --workdir=e1",
        "--config=configs/eval.py:tiny --workdir=e2 --config.eval.max_frame=2",
        "--config=configs/eval.py:tiny --workdir=afile",
        "--config=configs/eval.py --workdir=e4 --config.root=nowhere",
        "--config=configs/eval.py --workdir=e5 --config.root=afile",
        "--config=configs/eval.py --workdir=e6 --config.root=tree --config.eval.cross=False",
    ]
    lines = _run_cases(tmp_path, "jaxreenact.evaluate", "eval.batch_size", cases)
    out = dict(zip(cases, lines))
    for case in cases[:-1]:
        assert out[case].startswith("2 error (jaxreenact.evaluate): ") and " | " not in out[case], out[case]
    assert "did you mean --config=configs/eval.py:tiny?" in out[cases[0]]
    assert "did you mean --config.eval.max_frames?" in out[cases[1]]
    assert "afile: is a file" in out[cases[2]]
    assert "config.root = 'nowhere': not a folder" in out[cases[3]]
    assert "config.root = 'afile': not a folder" in out[cases[4]]
    # a real config lists every missing checkpoint, before any network (and before any report) is written
    assert out[cases[5]].startswith("2 error (jaxreenact.evaluate): missing converted weights")
    assert "config.weights.inception" in out[cases[5]]
    assert lines[-1] == "left: ['afile', 'tree']"


# ------------------------------------------------------------------------------------------- issue 25 frictions
@pytest.mark.parametrize(
    "program, argv, suggestion",
    [
        ("reenact", ["--sourse", "example", "--driving", "example", "--out", "o"], "--source"),
        ("reenact", ["--source", "example", "--drving=example", "--out", "o"], "--driving"),
        ("edit", ["--source", "example", "--directons", "0", "--out", "o"], "--directions"),
        ("generate", ["--tiny", "--nmu", "3"], "--num"),
        ("preprocess", ["example", "--out", "o", "--max-frams", "3"], "--max-frames"),
        ("stats", ["--tiny", "--out", "r.npy", "--nun", "4"], "--num"),
        ("invert", ["root", "--save-imagse"], "--save-images"),
    ],
)
def test_a_mistyped_flag_gets_a_suggestion(program, argv, suggestion, capsys):
    """Checked before argparse's own parsing, which would first complain about the required flag instead."""
    prog = importlib.import_module(f"jaxreenact.{program}")
    with pytest.raises(SystemExit) as e:
        prog.parse_args(argv)
    assert e.value.code == 2
    bad = next(a.split("=")[0] for a in argv if a.startswith("--") and a.split("=")[0] not in ALLOWED)
    assert f"unknown flag {bad}: did you mean {suggestion}?" in capsys.readouterr().err


ALLOWED = ("--source", "--driving", "--out", "--tiny")


def test_known_flags_values_and_abbreviations_are_not_flagged():
    from jaxreenact import reenact

    a = reenact.parse_args(["--source", "example", "--driving=example", "--out", "o", "--gains", "jaw=1.5",
                            "--max-fr", "3", "--tiny"])  # fmt: skip
    assert a.max_frames == 3 and a.gains == ["jaw=1.5"]


class _Ran(Exception):
    pass


def test_tune_steps_alone_tunes_in_edit(monkeypatch):
    from jaxreenact import edit
    from jaxreenact.inference import editing

    seen = []

    def fake_run(opts, locate=None):
        seen.append(opts)
        raise _Ran

    monkeypatch.setattr(editing, "run", fake_run)
    for extra, want in ((["--tune-steps", "2"], (True, 2)), ([], (False, 200)), (["--tune"], (True, 200))):
        with pytest.raises(_Ran):
            edit.main(["--source", "example", "--directions", "0", "--out", "o", "--tiny", *extra])
        assert (seen[-1].tune, seen[-1].tune_steps) == want, extra


def test_no_tune_with_tune_steps_is_an_error(capsys):
    from jaxreenact import reenact

    with pytest.raises(SystemExit) as e:
        reenact.main(["--source", "example", "--driving", "example", "--out", "o", "--no-tune", "--tune-steps", "5"])
    assert e.value.code == 2
    assert "--no-tune and --tune-steps 5" in capsys.readouterr().err


def test_generate_shows_progress(capsys):
    import jax.numpy as jnp

    from jaxreenact.inference import sampling

    class Generator:  # stands in for StyleGAN2: what `sample` calls, nothing else
        style_dim = 4

        def apply(self, variables, z, truncation):
            return jnp.broadcast_to(z[:, None, None, :3], (z.shape[0], 2, 2, 3))

    cli.setup_logging(False)
    images = sampling.sample(Generator(), {}, 5, batch=2, progress=True)
    assert images.shape == (5, 2, 2, 3)
    err = capsys.readouterr().err
    assert "compiles the generator" in err and "generate" in err and "5/5" in err


def test_the_missing_weights_message_mentions_tiny(tmp_path):
    from jaxreenact.weights import registry

    with pytest.raises(UserError) as e:
        registry.check_paths({"generator": str(tmp_path / "nothing")})
    assert "python -m converters.stylegan2" in str(e.value) and "--tiny" in str(e.value)


def test_reenact_last_line_names_every_file_it_wrote():
    from jaxreenact.inference import reenactment

    written = ["reenacted.mp4", "grid.mp4", "pasted.mp4", "source.png", "source_inverted.png", "source_dp0.png",
               "summary.json", "frames/"]  # docs/inference.md's list  # fmt: skip
    summary = {"frames": 3, "fps": 25.0, "mode": "absolute", "audio": True, "seconds_total": 1.0,
               "no_face_frames_held": [], "multiple_faces": [], "tiny_random_networks": True, "pasted": True,
               "pasted_size": [512, 384], "outputs": [*written, "m.npz"]}  # fmt: skip
    last = reenactment.format_summary(summary, "runs/r").splitlines()[-1]
    assert last.startswith("wrote runs/r/: ")
    for name in [*written, "m.npz"]:
        assert name in last, name


def test_a_workdir_program_names_everything_in_its_folder(tmp_path):
    """train and evaluate end with `cli.folder_entries(workdir)`: each file and folder of the workdir."""
    for name in ("checkpoints", "images", "tb", "cache"):
        (tmp_path / name).mkdir()
    for name in ("config.json", "metrics.jsonl", "results.json"):
        (tmp_path / name).write_text("{}")
    line = cli.folder_entries(tmp_path)
    assert line == f"{tmp_path}/: cache/, checkpoints/, config.json, images/, metrics.jsonl, results.json, tb/"
