"""The training loop's steady state (issue 23): between sync points (log, validation, checkpoint, last step) it reads
no device value, so the host dispatches step after step; the real-data batches reach the devices as uint8, ahead of
the step. Host reads are counted at the one place every read of a `jax.Array` goes through (`ArrayImpl._value`:
`float()`, `np.asarray`, `.item()`, `jax.device_get`); the loop before issue 23 read the loss once a step."""

import jax
import numpy as np
import pytest
from jax._src import array as jax_array

from configs import mixed
from jaxreenact.common.mesh import make_mesh
from jaxreenact.training import loop, real, stages

STEPS, LOG_EVERY = 7, 3  # sync points after steps 3, 6 and 7; steps 1, 2, 4 and 5 are steady


@pytest.fixture
def count_reads(monkeypatch):
    """A list that grows by one at each host read of a jax.Array's value."""
    reads = []
    original = jax_array.ArrayImpl._value

    def counted(self):
        reads.append(self.shape)
        return original.fget(self)

    monkeypatch.setattr(jax_array.ArrayImpl, "_value", property(counted))
    return reads


def config(tmp_path):
    c = mixed.get_config("tiny")
    with c.unlocked():
        c.train.steps, c.train.log_every, c.train.eval_every, c.train.checkpoint_every = STEPS, LOG_EVERY, 0, 100
        c.mesh.data = 2
        c.data.fake_dir = str(tmp_path / "fake")
    return c


def test_no_host_read_between_sync_points(tmp_path, count_reads):
    per_step = {}

    def on_step(done, state):
        per_step[done] = len(count_reads)

    loop.train(config(tmp_path), tmp_path / "run", stages.build_stage, progress=False, on_step=on_step)
    reads = {done: per_step[done] - per_step[done - 1] for done in range(2, STEPS + 1)}
    steady = {done: n for done, n in reads.items() if done % LOG_EVERY and done != STEPS}
    assert steady == {2: 0, 4: 0, 5: 0}, reads
    assert all(reads[done] > 0 for done in (3, 6, 7)), reads  # the metrics line is read at each sync point


def test_batches_reach_the_devices_as_uint8(tmp_path):
    c = config(tmp_path)
    mesh = make_mesh(c.mesh.data)
    stage = stages.build_stage(c, mesh)
    batch = stage.batches(0)
    image = batch["image"]
    assert isinstance(image, jax.Array) and image.dtype == np.uint8
    assert image.sharding.is_equivalent_to(jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data")), 4)
    # The step's float images are the reader's float conversion of the same frames.
    ds = real.open_dataset(c)
    want = next(ds.frame_batches(c.train.batch_size // 2, c.seed))["image"]
    np.testing.assert_allclose(np.asarray(real.float_images(image)), want, rtol=0, atol=1e-6)
