"""Video I/O beside a BLAS pool (issue 24): decoding and encoding in one thread while another multiplies matrices
must not hang. A fork while OpenBLAS's pool works (what imageio-ffmpeg's `subprocess.Popen` did) leaves the
multiplying thread spinning forever; the video module must start no child process at all."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

EXAMPLE = pathlib.Path(__file__).parents[1] / "jaxreenact" / "resources" / "examples"
VIDEO = EXAMPLE / "driving_lWOTF8SdzJw_2614-2801.mp4"

SCRIPT = textwrap.dedent(
    """
    import os, sys, threading, time
    import numpy as np

    mode, video, out = sys.argv[1], sys.argv[2], sys.argv[3]
    stop = threading.Event()
    done = []

    def multiply():
        a = np.random.default_rng(0).standard_normal((300, 300))
        while not stop.is_set():
            a = np.tanh(a @ a)
        done.append("matmul")

    def io():
        for k in range(6):
            if mode == "fork":  # the old path: a child process per video call
                import subprocess
                subprocess.run(["true"], preexec_fn=lambda: None, check=True)
            else:
                from jaxreenact.data import video as v
                frames = v.read_video(video, max_frames=4)
                v.write_video(os.path.join(out, f"o{k}.mp4"), frames[:, :64, :64], fps=5, audio_from=video)
                v.probe_video(os.path.join(out, f"o{k}.mp4"))
        done.append("io")

    t = threading.Thread(target=multiply)
    t.start()
    time.sleep(0.2)  # the BLAS pool is busy before the first video call
    io()
    stop.set()
    t.join()
    print(" ".join(sorted(done)))
    """
)


def run_script(mode: str, tmp_path, timeout: float):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "4", "OMP_NUM_THREADS": "4"}
    return subprocess.run([sys.executable, "-c", SCRIPT, mode, str(VIDEO), str(tmp_path)], capture_output=True,
                          text=True, timeout=timeout, env=env)  # fmt: skip


def test_video_io_beside_matrix_products_does_not_hang(tmp_path):
    try:
        r = run_script("video", tmp_path, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("video decoding/encoding beside numpy matrix products hung for 60 s (a fork under a BLAS pool?)")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["io", "matmul"]
    assert len(list(tmp_path.glob("o*.mp4"))) == 6
