"""The mixed (real + synthetic) step gives the same A on 1 and on 8 devices (issue 7)."""

import jax
import numpy as np

from configs import mixed
from jaxreenact.training import loop, setup, stages
from train_helpers import assert_same_step, step_metrics


def test_mixed_step_same_on_1_and_8_devices(tmp_path):
    assert jax.device_count() == 8
    params = {}
    for n in (1, 8):
        c = mixed.get_config("tiny")
        with c.unlocked():
            c.train.steps = 1
            c.train.eval_every = 0
            c.train.batch_size = 16  # 8 real + 8 synthetic rows: each half splits over the 8 devices
            c.mesh.data = n
            c.data.fake_dir = str(tmp_path / "fake")  # one made-up tree and dataset for both runs
        state = loop.train(c, tmp_path / f"d{n}", build_stage=stages.build_stage, progress=False)
        assert int(state.step) == 1
        params[n] = [np.asarray(x) for x in jax.tree.leaves(state.params)]
    assert_same_step(step_metrics(tmp_path / "d1"), step_metrics(tmp_path / "d8"),
                     ("identity", "perceptual", "shape", "eye", "mouth"))  # fmt: skip
    for a, b in zip(params[1], params[8], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    init = mixed.get_config("tiny")
    # The step moved A (the comparison is not of two initialisations): A's bias/weights differ from a fresh start.

    fresh = setup.init_params_fn(setup.a_module(init))(jax.random.split(jax.random.key(init.seed))[0])
    assert max(float(np.abs(a - np.asarray(b)).max()) for a, b in zip(params[8], jax.tree.leaves(fresh))) > 0
