"""Training as 2 real processes on this machine (issue 16): `launch/local_multiprocess.sh` starts 2 processes over
127.0.0.1 with 2 simulated CPU devices each (gloo collectives). The test sends SIGTERM to process 1 mid-training and
checks that both processes stop after a checkpoint of the same step with exit status 143, that the losses and the
validation equal those of one process with 4 devices, that only process 0 wrote metrics and images, that the same
command resumes to the numbers of an uninterrupted run, whose checkpoint restores in a single process, and that a
finished run says so on every process. The mixed stage: its synthetic half
is the synthetic stage's step, and each process reads its own rows of each real batch; batch 10 over 4 devices, so
the batch is padded to 12 (the real half: 5 to 8), and the global mesh lists the devices interleaved (process 0,
1, 0, 1, as a pod's ring may), so each process holds rows that are not contiguous (issue 23: reading rows
[p·B/P, (p+1)·B/P) instead changed the loss terms by 14 %). The paired stage likewise, batch 5 padded to 8, one
step. Started with the launcher's explicit variables (its default); the variables of
its Slurm mode, which JAX's own cluster detection reads, join 2 processes in a separate, short test.
"""

import json
import os
import pathlib
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import jax
import numpy as np
import pytest

from configs import mixed, paired
from jaxreenact.common import checkpoints, distributed
from jaxreenact.training import loop, stages

ROOT = pathlib.Path(__file__).resolve().parents[1]
LAUNCHER = ROOT / "launch" / "local_multiprocess.sh"
STEPS = 5
INTERLEAVED = "0,2,1,3"  # positions in jax.devices() (process 0's 2 devices, then process 1's)
KEYS = ("loss", "grad_norm", "loss/identity", "loss/perceptual", "loss/shape", "loss/eye", "loss/mouth")


def settings(tmp_path) -> dict:
    return {
        "train.steps": STEPS,
        "train.batch_size": 10,
        "mesh.device_order": INTERLEAVED,
        "train.log_every": 1,
        "train.checkpoint_every": 100,
        "train.eval_every": 100,  # validation (and so the image grid) once, at step 0
        "data.fake_dir": str(tmp_path / "fake"),  # one made-up dataset for every run
    }


def config(s: dict, module=mixed, **more):
    c = module.get_config("tiny")
    with c.unlocked():
        for k, v in {**s, **more}.items():
            obj = c
            *path, last = k.split(".")
            for p in path:
                obj = getattr(obj, p)
            setattr(obj, last, v)
    return c


def rows(workdir) -> list[dict]:
    path = pathlib.Path(workdir) / "metrics.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.is_file() else []


def digest(out: str) -> str:
    """What a failure message shows of a launcher log: its error lines (the first cause is rarely in the tail, which
    holds the thread dumps of a fatal error), then its last lines."""
    errors = [x for x in out.splitlines() if re.search(r"Error|error:|Fatal|Terminating|timed out|^[EF]\d{4} ", x)]
    return "\n".join(errors[:20]) + "\n...\n" + out[-2000:]


def two_processes(code: str, env_of: Callable[[int], dict], timeout: float, codes: list | None = None) -> list[str]:
    """Run `code` as 2 processes with 2 CPU devices each (`env_of(i)`: process i's own variables); their stdouts,
    each with what it printed to stderr (and their exit statuses appended to `codes`). Fails when they are not
    done within `timeout` seconds."""
    base = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES") and "SLURM" not in k}
    base.update(JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2", PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", code], env={**base, **env_of(i)}, cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(2)]  # fmt: skip
    t0 = time.monotonic()
    try:
        outs = [p.communicate(timeout=max(1.0, timeout - (time.monotonic() - t0))) for p in procs]
    except subprocess.TimeoutExpired:
        pytest.fail(f"the 2 processes were not done after {timeout} s")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    if codes is not None:
        codes.extend(p.returncode for p in procs)
    return [o + e for o, e in outs]


def result_lines(outs: list[str]) -> list[str]:
    # Gloo writes its own lines to stdout in any order with ours, so look for the tagged one.
    return sorted(next((x[7:] for x in o.splitlines() if x.startswith("RESULT ")), f"(no result) {digest(o)}")
                  for o in outs)  # fmt: skip


def free_port(candidates) -> int:
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
                return sock.getsockname()[1]
            except OSError:
                continue
    raise RuntimeError("no free port")


def wait(cond, proc, timeout, what):
    t0 = time.monotonic()
    while not cond():
        if proc.poll() is not None:
            return
        if time.monotonic() - t0 > timeout:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_two_processes_train_as_one_process_with_4_devices(tmp_path):
    s = settings(tmp_path)
    # The reference: one process, 4 of the simulated devices, uninterrupted (this also builds the fake dataset).
    ref_state = loop.train(config(s, **{"mesh.data": 4, "mesh.device_order": ""}), tmp_path / "ref",
                           stages.build_stage, progress=False)  # fmt: skip
    ref = {r["step"]: r for r in rows(tmp_path / "ref")}

    work = tmp_path / "mp"
    env = launcher_env()
    flags = [f"--config.{k}={v}" for k, v in s.items()]
    log = tmp_path / "launcher.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(["bash", str(LAUNCHER), "configs/mixed.py:tiny", str(work), "2", "2", *flags],
                                cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait(lambda: "process 1 of 2: pid" in log.read_text(), proc, 60, "the launcher")
        pid1 = int(re.search(r"process 1 of 2: pid (\d+)", log.read_text()).group(1))
        wait(lambda: any(r["step"] >= 1 for r in rows(work)), proc, 900, "the first step")
        try:
            os.kill(pid1, signal.SIGTERM)  # process 1 only: process 0 learns of it through the agreement
        except ProcessLookupError:
            pytest.fail(f"process 1 ended before the signal:\n{digest(log.read_text())}")
        rc = proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = log.read_text()
    stops = re.findall(r"jaxreenact.train: interrupted by SIGTERM after step (\d+): checkpoint", out)
    assert rc == 143 and len(stops) == 2 and len(set(stops)) == 1, digest(out)
    k = int(stops[0])
    assert 1 <= k < STEPS, digest(out)
    assert "Traceback" not in out, digest(out)
    assert out.count("mesh: 4 devices on the data axis, of processes 0,1,0,1") == 2, digest(out)
    assert sorted(p.name for p in (work / "checkpoints").iterdir() if p.name.isdigit()) == [str(k)]

    # Only process 0 wrote: one metrics line per step, one TensorBoard file, one grid.
    got = rows(work)
    assert [r["step"] for r in got] == list(range(k + 1))
    assert len(list((work / "tb").iterdir())) == 1
    assert [p.name for p in (work / "images").iterdir()] == ["reenactment_0000000.png"]
    # The losses and the validation of 2 processes x 2 devices are those of 1 process x 4 devices.
    val = [key for key in got[0] if key.startswith("val/")]
    assert val and all(key in ref[0] for key in val)
    for r in got:
        for key in KEYS if r["step"] else val:
            np.testing.assert_allclose(r[key], ref[r["step"]][key], rtol=2e-5, err_msg=f"{key} at step {r['step']}")

    # The same command resumes (as 2 processes) and finishes as the uninterrupted run; its checkpoint restores in
    # one process to the uninterrupted run's A.
    rc, out = launch(work, flags, env, "resume.log")
    assert rc == 0, digest(out)
    assert f"resumed from {work / 'checkpoints'} at step {k}" in out, digest(out)
    steps = [r["step"] for r in rows(work)]
    assert steps == list(range(STEPS + 1)), steps  # the lines after the restored checkpoint were dropped
    for r in rows(work)[k + 1 :]:
        np.testing.assert_allclose(r["loss"], ref[r["step"]]["loss"], rtol=2e-5, err_msg=f"loss at step {r['step']}")
    mgr = checkpoints.Manager(work / "checkpoints")
    try:
        state = mgr.restore(STEPS, target=ref_state)
    finally:
        mgr.close()
    assert int(state.step) == STEPS
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(ref_state.params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    # Once more: every process finds the run done and says so.
    rc, out = launch(work, flags, env, "again.log")
    assert rc == 0 and out.count(f"already trained to step {STEPS}") == 2, digest(out)


def launcher_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES")}
    env.update(PYTHON=sys.executable, PYTHONPATH=str(ROOT), JAX_DEFAULT_MATMUL_PRECISION="highest", JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="1",
               JAX_COMPILATION_CACHE_DIR=os.environ.get("JAXREENACT_TEST_CACHE", "/tmp/jaxreenact-jax-cache"))  # fmt: skip
    return env


def launch(work, flags, env, log: str, cfg: str = "configs/mixed.py:tiny") -> tuple[int, str]:
    """The launcher, 2 processes x 2 devices, to its end: its exit status and output (also in `log` beside `work`)."""
    cmd = ["bash", str(LAUNCHER), cfg, str(work), "2", "2", *flags]
    with open(work.parent / log, "w") as fh:
        rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=900).returncode
    return rc, (work.parent / log).read_text()


def test_two_interleaved_processes_train_the_paired_stage_as_one_process(tmp_path):
    """Paired batch 5 padded to 8 over 4 devices listed interleaved: process 0 holds rows 0-1 and 4-5 (row 5 a
    padded copy), process 1 rows 2-3 and 6-7; one step's loss and every term equal one process with 4 devices in
    natural order (by hand on the code before issue 23: 52 % apart)."""
    s = {**settings(tmp_path), "train.steps": 1, "train.batch_size": 5, "train.eval_every": 0}
    loop.train(config(s, paired, **{"mesh.data": 4, "mesh.device_order": ""}), tmp_path / "ref", stages.build_stage,
               progress=False)  # fmt: skip
    rc, out = launch(tmp_path / "mp", [f"--config.{k}={v}" for k, v in s.items()], launcher_env(), "paired.log",
                     cfg="configs/paired.py:tiny")  # fmt: skip
    assert rc == 0 and out.count("of processes 0,1,0,1") == 2, digest(out)
    (got,), (want,) = rows(tmp_path / "mp"), rows(tmp_path / "ref")
    assert got["step"] == want["step"] == 1
    for key in (*KEYS, "loss/pixel"):
        np.testing.assert_allclose(got[key], want[key], rtol=2e-5, err_msg=key)


def test_slurm_variables_join_two_processes():
    """The variables the launcher's Slurm mode sets, read by JAX's own cluster detection through
    `distributed.initialize`, make 2 processes x 2 devices one run of 4 devices that gathers across processes."""
    port = free_port(random.sample(range(61440, 65536), 200))  # JAX's Slurm port: 61440 + job id % 4096
    code = ("import jax, jax.numpy as jnp; from jax.experimental import multihost_utils as mh; "
            "from jaxreenact.common import distributed; assert distributed.initialize(); "
            "print('RESULT', jax.process_index(), jax.process_count(), jax.device_count(), "
            "mh.process_allgather(jnp.asarray([jax.process_index()])).ravel().tolist(), flush=True)")  # fmt: skip
    slurm = {"SLURM_JOB_ID": str(port - 61440), "SLURM_STEP_NODELIST": "127.0.0.1", "SLURM_NTASKS": "2"}
    outs = two_processes(code, lambda i: {**slurm, "SLURM_PROCID": str(i), "SLURM_LOCALID": str(i)}, timeout=180)
    assert result_lines(outs) == ["0 2 4 [0, 1]", "1 2 4 [0, 1]"], outs


LATE_S = 40  # longer than the 30 s gloo waits for a peer when a set of devices first meets in a collective


def test_a_process_that_compiles_late_is_waited_for():
    """`distributed.compiled_together`: process 1 reaches a step's first run 40 s after process 0 (as when its
    compile is slower, on a loaded host); process 0 waits at the barrier instead of failing in gloo's setup. The
    same program with the plain jitted function fails on this JAX (by hand: "Gloo context initialization failed:
    ... GetKeyValue() timed out ... 30s")."""
    code = f"""
import time, jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from jaxreenact.common import distributed
from jaxreenact.common.mesh import make_mesh
assert distributed.initialize()
mesh = make_mesh(4)
x = jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")), np.full((2,), jax.process_index() + 1.0))
total = distributed.compiled_together(jax.jit(jnp.sum, out_shardings=NamedSharding(mesh, P())), "sum")
if jax.process_index() == 1:
    time.sleep({LATE_S})
got = float(total(x))
print("RESULT", jax.process_index(), got, flush=True)
"""
    port = free_port([0])
    env = {distributed.COORDINATOR: f"127.0.0.1:{port}", distributed.NUM_PROCESSES: "2"}
    outs = two_processes(code, lambda i: {**env, distributed.PROCESS_ID: str(i)}, timeout=240)
    assert result_lines(outs) == ["0 6.0", "1 6.0"], outs  # (1 + 1) + (2 + 2)


def test_a_process_that_fails_ends_the_others_at_once():
    """`distributed.fail_together`: process 1 raises while process 0 waits for it in a collective. Both end within
    seconds: process 0 names process 1 and its error, and neither waits for JAX's shutdown barrier. (Without it,
    by hand: both hang 300 s, until the barrier gives up, then abort with status 134.)"""
    code = """
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from jaxreenact.common import distributed
from jaxreenact.common.mesh import make_mesh
assert distributed.initialize()
mesh = make_mesh(4)
x = jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")), np.full((2,), jax.process_index() + 1.0))
total = jax.jit(jnp.sum, out_shardings=NamedSharding(mesh, P()))
with distributed.fail_together("jaxreenact.test"):
    print("RESULT", jax.process_index(), float(total(x)), flush=True)
    if jax.process_index() == 1:
        raise ValueError("frame 7 of video.mp4 is unreadable")
    float(total(x))  # process 1 never comes
    print("process 0 passed the second collective", flush=True)
"""
    port = free_port([0])
    env = {distributed.COORDINATOR: f"127.0.0.1:{port}", distributed.NUM_PROCESSES: "2"}
    codes = []
    outs = two_processes(code, lambda i: {**env, distributed.PROCESS_ID: str(i)}, timeout=90, codes=codes)
    assert result_lines(outs) == ["0 6.0", "1 6.0"], outs
    assert codes == [1, 1], (codes, outs)
    assert "process 1 failed (ValueError: frame 7 of video.mp4 is unreadable); stopping process 0 too" in outs[0]
    assert "passed the second collective" not in outs[0]
    assert "ValueError: frame 7 of video.mp4 is unreadable" in outs[1] and "Traceback" in outs[1]
    assert "Terminating process" not in "".join(outs)  # no abort: the shutdown barrier was not waited for


def test_environment_detection_and_one_process_programs(monkeypatch):
    from jaxreenact.common.errors import UserError

    assert not distributed.requested({})
    assert distributed.requested({"SLURM_NTASKS": "2"}) and not distributed.requested({"SLURM_NTASKS": "1"})
    assert distributed.requested({"TPU_WORKER_HOSTNAMES": "a,b"}) and not distributed.requested(
        {"TPU_WORKER_HOSTNAMES": "a"}
    )
    assert distributed.requested({distributed.COORDINATOR: "127.0.0.1:1234"})
    with pytest.raises(UserError, match="JAXREENACT_NUM_PROCESSES"):
        distributed.initialize({distributed.COORDINATOR: "127.0.0.1:1234"})
    # evaluate and data.build refuse a multi-process start in one line
    with pytest.raises(UserError, match="runs as one process"):
        distributed.refuse("python -m jaxreenact.evaluate", {"SLURM_NTASKS": "4"})
    items = list(range(11))
    shares = [distributed.share(items, i, 3) for i in range(3)]
    assert sorted(sum(shares, [])) == items and not set(shares[0]) & set(shares[1])


def test_invert_splits_the_frames_between_processes(tmp_path):
    from jaxreenact.data import fake
    from jaxreenact.inference import inversion
    from jaxreenact.weights import load_bundle

    root = fake.make_fake_tree(tmp_path / "tree", n_ids=1, n_videos=2, n_frames=3, image_size=64)
    for f in root.glob("*/*/inversion/latent_codes/*.npy"):
        f.unlink()
    nets, variables = load_bundle(("e4e",), tiny_seed=0)
    counts = []
    for i in (1, 0):  # one after the other: the split must not depend on what the other process did already
        report = inversion.invert_tree(root, nets, variables, 2, progress=False, process_index=i, process_count=2)
        counts.append(report.inverted)
    assert sum(counts) == 6 and len(list(root.glob("*/*/inversion/latent_codes/*.npy"))) == 6
