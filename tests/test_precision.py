"""The precision policy (jaxreenact.common.precision, docs/precision.md): the scope reaches the lowered HLO inside
jit, the DECA box and crop run at highest under a faster program policy, every program states its policy, the
DECA crop's matmuls equal the gather, and a bfloat16 training step stays within the stated bound of float32."""

import pathlib
import re
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import eval as eval_config
from configs import synthetic
from jaxreenact.common import cli, precision
from jaxreenact.common.errors import UserError
from jaxreenact.face import deca_box, deca_crop
from jaxreenact.models.fan import FAN
from jaxreenact.models.sfd import S3FD
from jaxreenact.pose.deca import fixed_deca_theta
from jaxreenact.training import stages

OPS = re.compile(r"stablehlo\.(dot_general|convolution)\b.*")


def op_precisions(hlo: str) -> list[str]:
    """The precision of each dot/convolution of a lowered module's text, in order ("DEFAULT" when none is set)."""
    out = []
    for m in OPS.finditer(hlo):
        found = re.search(r"precision[^A-Z]*(DEFAULT|HIGHEST|HIGH)", m.group(0))
        out.append(found.group(1) if found else "DEFAULT")
    return out


@pytest.fixture(autouse=True)
def _restore_highest():
    yield
    precision.set_default("highest")  # as tests/conftest.py runs everything else


def test_scope_inside_jit_reaches_the_hlo():
    def f(a, b):
        x = a @ b  # the program's policy
        with precision.scope("highest"):
            y = a @ b
            z = jax.lax.conv_general_dilated(
                a[None, :, :, None], b[:3, :3, None, None], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
        return x + y + z[0, :, :, 0]

    a = jnp.ones((4, 4))
    precision.set_default("default")
    assert op_precisions(jax.jit(f).lower(a, a).as_text()) == ["DEFAULT", "HIGHEST", "HIGHEST"]
    precision.set_default("high")
    assert op_precisions(jax.jit(f).lower(a, a).as_text()) == ["HIGH", "HIGHEST", "HIGHEST"]


def test_deca_box_and_crop_run_at_highest_under_a_default_program():
    """Training's policy is "default"; every convolution of S3FD and FAN inside the box, and the crop's matmuls,
    still lower at HIGHEST, while a network beside them in the same step keeps the program's policy."""
    s, f = S3FD(), FAN(num_modules=1)  # as the tiny locator; only shapes are needed to lower
    sv = jax.eval_shape(s.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32))
    fv = jax.eval_shape(f.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 256, 256, 3), jnp.float32))
    images = jax.ShapeDtypeStruct((1, 256, 256, 3), jnp.float32)
    w = jax.ShapeDtypeStruct((3, 3, 3, 3), jnp.float32)

    def step(sv, fv, images, w):
        theta, _, _ = deca_box.landmark_theta((s, sv), (f, fv), images, fixed_deca_theta(1))
        crop = deca_crop.deca_input(images, theta)
        other = jax.lax.conv_general_dilated(crop, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return other

    precision.set_default(precision.program_default("train"))
    got = op_precisions(jax.jit(step).lower(sv, fv, images, w).as_text())
    assert len(got) > 40  # S3FD's and FAN's convolutions, the crop's two einsums, the other network's conv
    assert got.count("DEFAULT") == 1 and got[-1] == "DEFAULT", got
    assert set(got[:-1]) == {"HIGHEST"}


def test_deca_crop_matmuls_equal_the_gather():
    """Two bilinear matrices per image give kornia's warp (the gather of `nn.warp`, checked against kornia's
    formulas by tests/test_face_geometry.py): boxes inside, across the border and larger than the image; values
    and the gradient to the image."""
    rng = np.random.default_rng(0)
    img = jnp.asarray(rng.uniform(0, 255, (4, 256, 256, 3)).astype(np.float32))
    boxes = np.array([[60, 70, 190, 200], [-20, -10, 150, 160], [100, 120, 300, 290], [0, 0, 255, 255.0]])
    theta = deca_crop.crop_matrix_from_box(boxes)
    got, want = deca_crop.deca_crop(img, theta), deca_crop.deca_crop_gather(img, theta)
    assert float(jnp.abs(got - want).max()) <= 2e-4  # of 255; measured 4.6e-5 (float32 rounding of the weights)
    wts = jnp.asarray(rng.standard_normal((224, 224, 3)).astype(np.float32))
    g1 = jax.grad(lambda x: jnp.sum(deca_crop.deca_crop(x, theta) * wts))(img)
    g2 = jax.grad(lambda x: jnp.sum(deca_crop.deca_crop_gather(x, theta) * wts))(img)
    assert float(jnp.abs(g1 - g2).max()) <= 1e-5
    rows, cols = deca_crop.interp_matrices(theta, (256, 256), (224, 224))
    assert rows.shape == (4, 224, 256) and cols.shape == (4, 224, 256)
    assert int(jnp.sum(rows[1] != 0, axis=1).max()) <= 2  # two taps per output row


def test_every_program_states_its_precision(monkeypatch):
    src = pathlib.Path(cli.__file__).parents[1]
    programs = [
        f.stem for f in src.glob("*.py") if "add_run_flags" in f.read_text() or "run_config_program" in f.read_text()
    ]
    assert {"reenact", "train", "evaluate", "stats"} <= set(programs)
    for prog in programs:
        assert prog in precision.PROGRAM_DEFAULTS, f"{prog} states no precision"
    for prog in ("parity", "stats", "evaluate", "preprocess"):  # integers or metrics derived: highest
        assert precision.PROGRAM_DEFAULTS[prog] == "highest"
    assert synthetic.get_config().precision == precision.PROGRAM_DEFAULTS["train"]
    assert eval_config.get_config().precision == "highest"

    import argparse

    for prog, flags, want in (("reenact", [], "default"), ("reenact", ["--precision", "high"], "high"),
                              ("stats", [], "highest")):  # fmt: skip
        precision.set_default("highest" if want != "highest" else "default")  # what a caller left behind
        p = argparse.ArgumentParser(prog=f"python -m jaxreenact.{prog}")
        cli.add_run_flags(p)
        assert cli.parse(p, flags).precision == want
        assert precision.current() == want
    with pytest.raises(SystemExit):
        cli.parse(p, ["--precision", "fast"])

    argv = cli.prepare_config_argv(["train", "--config=configs/synthetic.py:tiny", "--precision=high"], "t", "x")
    assert "--config.precision=high" in argv
    with pytest.raises(UserError, match="--precision='fast'"):
        cli.prepare_config_argv(["train", "--precision=fast"], "t", "x")
    holder = types.SimpleNamespace
    for value, want in (("high", "high"), ("highest", "highest")):
        c = synthetic.get_config("tiny")
        with c.unlocked():
            c.precision = value
        precision.set_default("default")
        cli.config_program_inputs("python -m jaxreenact.train ...", holder(value=c), holder(value="w"), holder(value=0))
        assert precision.current() == want


# Measured on the :tiny synthetic step (3 keys, float32 vs bfloat16, CPU): the largest relative change of a loss
# term was 2.2e-2 (perceptual) and 2.0e-2 (identity, a 1 - cos of ~0.01), of the total loss 5.3e-3; shape, eye and
# mouth below 1e-4. Bound with margin: every term within 10 %, the total within 3 % (docs/precision.md).
TERM_BOUND, LOSS_BOUND = 0.10, 0.03


def test_bfloat16_step_loss_terms_near_float32():
    out = {}
    for dtype in ("float32", "bfloat16"):
        c = synthetic.get_config("tiny")
        with c.unlocked():
            c.dtype = dtype
            c.train.batch_size = 2  # one sample of each half of the 50 % scheme
        st = stages.build_stage(c, None)
        params = st.init_params(jax.random.key(3))
        out[dtype] = jax.jit(lambda p, k, st=st: st.loss(p, st.frozen, k, None))(params, jax.random.key(0))
    (l32, t32), (l16, t16) = out["float32"], out["bfloat16"]
    assert set(t32) == set(t16) and {"loss/identity", "loss/perceptual", "loss/shape"} <= set(t32)
    assert abs(float(l16) - float(l32)) <= LOSS_BOUND * abs(float(l32))
    for k in t32:
        assert abs(float(t16[k]) - float(t32[k])) <= TERM_BOUND * abs(float(t32[k])), (k, t16[k], t32[k])
    assert float(l16) != float(l32)  # the bfloat16 networks did run
