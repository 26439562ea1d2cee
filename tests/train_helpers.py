"""What the training tests read back from a run: the logged metrics of a step, compared across device counts."""

from __future__ import annotations

import json

import pytest


def step_metrics(workdir) -> dict[str, float]:
    """The logged metrics of the last training step in `workdir` (loss, every loss term, gradient norm)."""
    recs = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    rec = [r for r in recs if "loss" in r][-1]
    return {k: v for k, v in rec.items() if k not in ("step", "steps_per_s")}


def assert_same_step(m1: dict, m8: dict, terms) -> None:
    """One step's numbers agree across device counts: the loss, each term and the gradient norm (not just A after
    one Adam step, which moves every weight by about ±lr whatever the gradient's size)."""
    assert set(m1) == set(m8) and {"loss", "grad_norm", *(f"loss/{t}" for t in terms)} <= set(m1), sorted(m1)
    for k in m1:
        assert m1[k] == pytest.approx(m8[k], rel=1e-5, abs=1e-7), (k, m1[k], m8[k])
    assert m1["grad_norm"] > 0 and all(m1[f"loss/{t}"] > 0 for t in terms)
