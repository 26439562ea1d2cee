"""Direction matrix A: golden shift and shifted W+ (the rendered image: tests/test_parity.py), converter strictness,
CLI round trip."""

import numpy as np
import pytest

import goldens
from converters import direction_matrix
from jaxreenact import weights
from jaxreenact.common import checkpoints
from jaxreenact.common.errors import ConversionError, UserError
from jaxreenact.latent import directions
from jaxreenact.latent.directions import DirectionMatrix
from jaxreenact.weights import load

torch = pytest.importorskip("torch", reason="converter tests need torch (pip install torch==2.13.0)")
pytestmark = pytest.mark.torch

NAME = "direction_matrix"


@pytest.fixture(scope="module")
def a_file(tmp_path_factory):
    return goldens.write_checkpoint(NAME, tmp_path_factory.mktemp("A") / "A_matrix.pt")


@pytest.fixture(scope="module")
def a_model(a_file):

    return direction_matrix.load_torch(a_file)


def test_shift_and_shifted_latent(a_model):
    module, variables = a_model
    inp, exp = goldens.inputs(NAME), goldens.expected(NAME)
    shift = module.apply(variables, inp["dp"])
    np.testing.assert_allclose(shift, exp["shift"], atol=1e-5, rtol=0)
    shifted = directions.shift_wplus(inp["wplus"], shift)
    np.testing.assert_allclose(shifted, exp["shifted_latent"], atol=1e-5, rtol=0)
    np.testing.assert_array_equal(np.asarray(shifted)[:, 8:], inp["wplus"][:, 8:])


def test_init_matches_authors():
    import jax

    m = directions.DirectionMatrix()
    v = m.init(jax.random.key(0), np.zeros((1, 15), np.float32))["params"]["linear"]
    assert v["weight"].shape == (15, 4096) and v["bias"].shape == (4096,)
    assert abs(float(np.std(v["weight"])) - 0.03) < 0.002
    assert float(np.max(np.abs(v["bias"]))) <= 1 / np.sqrt(15) and float(np.std(v["bias"])) > 0.1


def test_cli_round_trip(a_file, a_model, tmp_path):

    direction_matrix.main([str(a_file), str(tmp_path / "A")])
    module, variables, meta = weights.load(tmp_path / "A", with_metadata=True)
    assert meta["shift_scale"] == 6.0 and len(meta["sources"]["A_matrix"]["sha256"]) == 64
    dp = np.random.default_rng(1).uniform(-6, 6, (3, 15)).astype(np.float32)
    np.testing.assert_allclose(module.apply(variables, dp), a_model[0].apply(a_model[1], dp), rtol=1e-6, atol=1e-6)


def test_strict_keys(tmp_path):
    sd = goldens.state_dict(NAME, "A")
    base = {"learned_directions": 15, "shift_scale": 6.0, "w_plus": True, "num_layers_shift": 8}

    torch.save({"A_matrix": {**sd, "linear.extra": torch.zeros(3)}, **base}, tmp_path / "extra.pt")
    with pytest.raises(ConversionError, match="linear.extra"):
        direction_matrix.load_torch(tmp_path / "extra.pt")
    torch.save({"A_matrix": {"linear.weight": sd["linear.weight"]}, **base}, tmp_path / "missing.pt")
    with pytest.raises(ConversionError, match="linear.bias"):
        direction_matrix.load_torch(tmp_path / "missing.pt")
    torch.save({"A_matrix": {**sd, "linear.bias": torch.zeros(10)}, **base}, tmp_path / "shape.pt")
    with pytest.raises(ConversionError, match="linear.bias"):
        direction_matrix.load_torch(tmp_path / "shape.pt")
    torch.save({"g_ema": {}}, tmp_path / "gen.pt")
    with pytest.raises(ConversionError, match="not a direction-matrix"):
        direction_matrix.load_torch(tmp_path / "gen.pt")
    # The authors' trainer saves no shift_dim: accepted, 512 assumed.
    torch.save({"A_matrix": sd, **base}, tmp_path / "trained.pt")
    m, _ = direction_matrix.load_torch(tmp_path / "trained.pt")
    assert m.shift_dim == 512 and m.num_layers == 8 and m.shift_scale == 6.0
    # The units A was trained in travel with it (inference builds Δp in them, as the authors' scripts read them).
    torch.save({"A_matrix": sd, **base, "shift_scale": 3.0}, tmp_path / "s3.pt")
    assert direction_matrix.load_torch(tmp_path / "s3.pt")[0].shift_scale == 3.0
    direction_matrix.main([str(tmp_path / "s3.pt"), str(tmp_path / "A3")])
    assert load(tmp_path / "A3")[0].shift_scale == 3.0
    torch.save({"A_matrix": sd, **base, "shift_scale": 0.0}, tmp_path / "s0.pt")
    with pytest.raises(ConversionError, match="shift_scale"):
        direction_matrix.load_torch(tmp_path / "s0.pt")


def test_missing_file_is_user_error(tmp_path):

    with pytest.raises(UserError, match="not found"):
        direction_matrix.load_torch(tmp_path / "nope.pt")


def test_checkpoint_written_before_the_move_still_loads(tmp_path):
    """Checkpoints converted before the restructure name `jaxreenact.directions:DirectionMatrix`."""
    import jax
    import jax.numpy as jnp

    a = DirectionMatrix(15, 8, 512)
    v = a.init(jax.random.key(0), jnp.zeros((1, 15)))
    meta = {"module": "jaxreenact.directions:DirectionMatrix", "config": {"input_dim": 15, "num_layers": 8}}
    checkpoints.save_tree(tmp_path / "A_old", v, meta)
    module, variables = load(tmp_path / "A_old")
    assert isinstance(module, DirectionMatrix) and module.num_layers == 8
    dp = jnp.ones((2, 15))
    assert jnp.array_equal(module.apply(variables, dp), a.apply(v, dp))
