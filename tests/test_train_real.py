"""The real-data stages (issue 7) train end to end on a made-up tree with the `:tiny` configs."""

import json

import pytest

from configs import mixed, paired
from jaxreenact.training import loop, stages


@pytest.mark.parametrize("stage", [mixed, paired])
def test_real_stage_tiny_trains(tmp_path, stage):
    c = stage.get_config("tiny")
    with c.unlocked():
        c.train.steps = 2
        c.train.eval_every = 2
        c.train.log_every = 1
        c.mesh.data = 2
        c.data.fake_dir = str(tmp_path / "fake")
    state = loop.train(c, tmp_path / "run", build_stage=stages.build_stage, progress=False)
    assert int(state.step) == 2
    recs = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("loss/identity" in r for r in recs) and any("val/csim" in r for r in recs)
    if stage is paired:
        assert any("loss/pixel" in r for r in recs)
