"""`python -m jaxreenact.app [--tiny] [--host 127.0.0.1] [--port 7860]`: a local web demo. Reenact tab: a source
photo and a driving video (or the shipped examples), the motion options, the reenacted video, the grid and the
summary. Edit tab: one slider per learned direction, the face re-rendered as a slider moves, the Δp and a sweep GIF
to download. See `jaxreenact.webapp`.
"""

from __future__ import annotations

import argparse

from jaxreenact.common.cli import add_run_flags
from jaxreenact.common.errors import UserError, cli_main
from jaxreenact.webapp import server, service
from jaxreenact.weights.registry import add_weight_flags


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m jaxreenact.app", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860; 0 takes any free port)")
    p.add_argument("--batch-size", type=int, default=16, help="frames per jitted batch (default 16)")
    p.add_argument("--max-upload-mb", type=float, default=512.0, help="largest upload accepted (default 512 MB)")
    p.add_argument("--queue", type=int, default=4, help="jobs queued or running, all pages together (default 4)")
    p.add_argument("--job-timeout", type=float, default=900.0, help="seconds a job may run (default 900)")
    p.add_argument("--max-frames", type=int, default=500, help="driving frames a reenactment reads (default 500)")
    p.add_argument("--max-pixels", type=int, default=4096 * 4096,
                   help="pixels of an uploaded image or video frame (default 4096×4096)")  # fmt: skip
    p.add_argument("--max-sessions", type=int, default=16, help="open pages at once (default 16)")
    p.add_argument("--request-timeout", type=float, default=30.0,
                   help="seconds for a request's headers and for each piece of its body (default 30)")  # fmt: skip
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="a Host name to answer besides 127.0.0.1/localhost (a reverse proxy's); repeatable")  # fmt: skip
    add_weight_flags(p, service.WEIGHT_NAMES)
    add_run_flags(p)
    return p.parse_args(argv)


@cli_main
def main(argv=None, locate=None):
    a = parse_args(argv)
    opts = server.Options(
        host=a.host,
        port=a.port,
        service=service.Options(
            weights={n: getattr(a, n) for n in service.WEIGHT_NAMES},
            tiny=a.tiny,
            seed=a.seed,
            batch_size=a.batch_size,
            max_upload_mb=a.max_upload_mb,
            progress=not a.no_progress,
            queue=a.queue,
            job_seconds=a.job_timeout,
            max_frames=a.max_frames,
            max_pixels=a.max_pixels,
            max_sessions=a.max_sessions,
        ),
        verbose=a.verbose,
        request_timeout=a.request_timeout,
        allowed_hosts=tuple(a.allowed_host),
    )
    if not 0 < a.request_timeout <= 3600:
        raise UserError(f"--request-timeout must be in (0, 3600] seconds, got {a.request_timeout:g}")
    server.serve(opts, locate=locate)


if __name__ == "__main__":
    main()
