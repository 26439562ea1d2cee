"""bench/device_checks.py, the correctness half of bench/accelerator.sh (issue 23 item 7), on the CPU: a check runs
in its own process and its rows come back as a RESULTS.md table; a check past its time limit is stopped and
reported as a failing row, and the run goes on; the DECA-box check's made-up landmarks span exactly the recorded
box; the per-folder summary names the array furthest from its tolerance."""

import importlib.util
import pathlib
import sys

import numpy as np

from jaxreenact.evaluation.parity.report import Row
from jaxreenact.face import deca_crop

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench"


def _module():
    sys.path.insert(0, str(BENCH))  # device_checks imports bench/common.py as `common`
    spec = importlib.util.spec_from_file_location("device_checks", BENCH / "device_checks.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["device_checks"] = mod  # its dataclass looks its module up there
    spec.loader.exec_module(mod)
    return mod


def test_a_check_reports_rows_and_one_past_its_limit_is_stopped(tmp_path):
    dc = _module()
    out = dc.run_checks(["matmul"], jobs=1, scale=1.0, log_dir=tmp_path / "a")
    rows = out["matmul"]["rows"]
    assert [r.name.split(" at ")[1].split(" ")[0] for r in rows] == ["highest", "default"]
    assert all(r.ok and r.measure == "rel" for r in rows)
    assert rows[0].value < 1e-5  # float32 on a CPU, against float64 NumPy
    md = dc.to_markdown(out, "python bench/device_checks.py --checks matmul", ["matmul"])
    assert "| matmul | f32 matmul 256×2048×256 at highest vs float64 | rel |" in md and "2/2 rows pass" in md
    # A limit no process can meet: the check is ended and says so, the run returns.
    out = dc.run_checks(["matmul"], jobs=1, scale=0.01, log_dir=tmp_path / "b")
    (row,) = [r for r in out["matmul"]["rows"] if not r.ok]
    assert row.name == "(time limit)" and out["matmul"]["rc"] == "timeout"


def test_box_landmarks_span_the_recorded_box_and_summary_names_the_worst():
    dc = _module()
    boxes = np.array([[[40.5, 61.25, 180.0, 230.75], [70.0, 99.0, 200.5, 197.0]]], np.float32)
    pts = dc.box_landmarks(boxes)
    assert pts.shape == (1, 2, 68, 2)
    np.testing.assert_array_equal(deca_crop.bbox_from_landmarks(pts.astype(np.float64)), boxes)
    rows = [
        Row("a", "max_abs", 5e-5, 1e-4, True),  # half its tolerance
        Row("b", "cosine", 0.99999, 0.9999, True),  # a tenth
        Row("c", "max_abs", 3e-3, 1e-3, False),  # three times: the worst
    ]
    s = dc.summary("golden:x", "x at default", rows)
    assert not s.ok and (s.measure, s.value, s.tol) == ("max_abs", 3e-3, 1e-3)
    assert s.note.startswith("2/3 arrays pass; worst c (3× its tolerance); FAIL: c")
