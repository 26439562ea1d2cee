"""The web app's state and actions, without HTTP (the server in `webapp.server` only moves bytes and JSON).

* The networks load once, when the service starts (`--tiny`: small random networks and the fake face locator).
  Missing converted weights do not stop it: the page shows the one message of `weights.check_paths` (every
  missing file and its converter command), and each action that needs a missing network raises that message.
* A session (one browser page) owns a temporary folder under the service's own temporary root; uploads,
  reenactments and exports are written there and nowhere else, and the root is removed when the service closes.
* Sources are prepared once per session and setting (crop, DECA p, e4e W+ and, if chosen, generator tuning:
  `inference.source.prepare_source`) and reused by both tabs.
* Long actions (reenact, loading an edit source, a sweep GIF) run as jobs, one at a time on the device; a job's
  progress is read from the library's own progress bars. Jobs are bounded: at most `Options.queue` queued or
  running in all (`JOBS_PER_SESSION` per session), each stopped after `Options.job_seconds` and reading at most
  `Options.max_frames` driving frames; a job can be cancelled, and is when its session closes or the app stops.
* Uploads are checked from their headers first (`webapp.uploads`: pixels, frames, a latent's shape) and removed
  when anything about them fails. Sessions are capped (`Options.max_sessions`); one idle for
  `Options.session_idle` seconds without a job is closed; none is ever evicted to make room for another.
* A slider move renders one frame: one jitted call of `inference.frames.render_dp` on a Δp of one row.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import json
import pathlib
import re
import secrets
import shutil
import sys
import tempfile
import threading
import time
import traceback

import numpy as np

from jaxreenact.common import cli
from jaxreenact.common.errors import UserError
from jaxreenact.common.files import atomic_write_bytes
from jaxreenact.data import images as images_lib
from jaxreenact.data import video as video_lib
from jaxreenact.face.pipeline import FixedLocate
from jaxreenact.inference import editing, frames, reenactment
from jaxreenact.inference.source import build_preprocessor, prepare_source
from jaxreenact.pose import motion as motion_lib
from jaxreenact.pose import params as pose
from jaxreenact.webapp import uploads
from jaxreenact.webapp.sessions import (
    EditState,
    Job,
    JobStopped,
    Session,
    boolean,
    live_bars,
    number,
    png_bytes,
    whole_number,
)
from jaxreenact.weights import check_paths, default_paths, load_bundle

# The shipped example inputs (the programs' `example`).
EXAMPLES = {"source": cli.EXAMPLE_SOURCE, "driving": cli.EXAMPLE_DRIVING}
WEIGHT_NAMES = tuple(dict.fromkeys(reenactment.WEIGHT_NAMES + editing.WEIGHT_NAMES))
BUNDLE_NAMES = tuple(n for n in WEIGHT_NAMES if n not in ("sfd", "fan"))  # sfd, fan: the face preprocessor
SLOTS = {
    "source": images_lib.IMAGE_EXTS + video_lib.VIDEO_EXTS,
    "driving": images_lib.IMAGE_EXTS + video_lib.VIDEO_EXTS,
    "edit": images_lib.IMAGE_EXTS + video_lib.VIDEO_EXTS + (".npy",),
}
SLIDER_RANGE = editing.SHIFT_SCALE  # sliders move each direction by -6..6 shift units
MAX_TUNE_STEPS = 2000
MAX_SMOOTH = 50.0  # smoothing σ, frames
MAX_GAIN = 10.0  # |gain| of a direction
JOBS_PER_SESSION = 2  # queued or running (a reenactment and an edit job side by side)
SOURCES_PER_SESSION = 2
RUNS_KEPT = 2  # reenactment folders kept per session
TINY_BANNER = "--tiny: small random networks and a fake face locator; the pictures mean nothing (tests and demos only)"


@dataclasses.dataclass
class Options:
    weights: dict = dataclasses.field(default_factory=lambda: default_paths(WEIGHT_NAMES))
    tiny: bool = False
    seed: int = 0
    batch_size: int = 16
    max_upload_mb: float = 512.0
    progress: bool = True
    tmp: str | None = None  # parent of the service's temporary root (default: the system's)
    queue: int = 4  # jobs queued or running, all sessions together
    job_seconds: float = 900.0  # a job running longer is stopped
    max_frames: int = 500  # driving frames a reenactment reads at most
    max_pixels: int = 4096 * 4096  # of an uploaded image or video frame
    max_sessions: int = 16  # open sessions (browser pages); one more is refused until one closes or expires
    session_idle: float = 3600.0  # seconds without a request (and no job) after which a session is closed

    @property
    def limits(self) -> uploads.Limits:
        return uploads.Limits(max_pixels=self.max_pixels, max_frames=self.max_frames)


class Busy(UserError):
    """The app is at a limit (sessions, queued jobs): try again later (HTTP 503)."""


def example_path(kind: str) -> pathlib.Path | None:
    p = EXAMPLES[kind]
    return p if p.is_file() else None


class Service:
    """The networks, the sessions and the actions of the app (see the module doc)."""

    def __init__(self, opts: Options, locate=None, bundle=None):
        if opts.batch_size < 1:
            raise UserError(f"--batch-size must be >= 1, got {opts.batch_size}")
        if not 0 < opts.max_upload_mb < 1e6:
            raise UserError(f"--max-upload-mb must be in (0, 1e6), got {opts.max_upload_mb:g}")
        for flag, v in (("--queue", opts.queue), ("--max-frames", opts.max_frames), ("--max-pixels", opts.max_pixels),
                        ("--max-sessions", opts.max_sessions), ("--job-timeout", opts.job_seconds)):  # fmt: skip
            if not (np.isfinite(v) and v >= 1):
                raise UserError(f"{flag} must be >= 1, got {v:g}")
        self.opts = opts
        self.paths = {n: opts.weights.get(n) or default_paths([n])[n] for n in WEIGHT_NAMES}
        self.space = pose.pose_space("voxceleb")
        self.names = motion_lib.direction_names(self.space.layout)
        self.weights_message = None
        if opts.tiny:
            self.loaded = set(WEIGHT_NAMES)
            locate = locate or FixedLocate()
            self.bundle = bundle or load_bundle(BUNDLE_NAMES, tiny_seed=opts.seed)
        else:
            try:
                check_paths({n: p for n, p in self.paths.items() if locate is None or n not in ("sfd", "fan")})
            except UserError as e:
                self.weights_message = str(e)
            self.loaded = {n for n, p in self.paths.items() if pathlib.Path(p).exists()}
            if locate is not None:
                self.loaded |= {"sfd", "fan"}
            present = [n for n in BUNDLE_NAMES if n in self.loaded]
            self.bundle = bundle or load_bundle(present, self.paths)
        self.locate = locate
        nets = self.bundle[0]
        if nets.A is not None and nets.A.input_dim != self.space.layout.num_directions:
            raise UserError(f"--A {self.paths['A']}: A has {nets.A.input_dim} directions, the voxceleb layout "
                            f"needs {self.space.layout.num_directions}")  # fmt: skip
        have_faces = locate is not None or {"sfd", "fan"} <= self.loaded
        self.pre = build_preprocessor(self.paths, tiny=opts.tiny, locate=locate) if have_faces else None
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="jaxreenact-app-", dir=opts.tmp))
        self.sessions: collections.OrderedDict[str, Session] = collections.OrderedDict()
        self.lock = threading.Lock()  # sessions and jobs
        self.device = threading.Lock()  # one job on the device at a time
        # the examples' headers, read at start (no video probe later, beside a job)
        self.headers = {p: uploads.inspect(p, p.name, opts.limits) for p in map(example_path, EXAMPLES) if p}
        self.closing = threading.Event()
        self.watchdog = threading.Thread(target=self._watch, name="app-watchdog", daemon=True)
        self.watchdog.start()

    # -- sessions ---------------------------------------------------------------------------------------------
    def info(self) -> dict:
        return {
            "tiny": self.opts.tiny,
            "banner": TINY_BANNER if self.opts.tiny else None,
            "weights_message": self.weights_message,
            "examples": {k: example_path(k) is not None for k in EXAMPLES},
            "directions": self.names,
            "slider_range": SLIDER_RANGE,
            "modes": list(motion_lib.MODES),
            "components": list(motion_lib.COMPONENTS),
            "max_upload_mb": self.opts.max_upload_mb,
            "limits": {
                "queue": self.opts.queue,
                "job_seconds": self.opts.job_seconds,
                "max_frames": self.opts.max_frames,
                "max_pixels": self.opts.max_pixels,
            },  # fmt: skip
            "accept": {k: ",".join(v) for k, v in SLOTS.items()},
        }

    def new_session(self) -> Session:
        """A new session, unless `max_sessions` are open (sessions are never evicted to make room)."""
        self._expire_idle()
        with self.lock:
            if self.closing.is_set():
                raise Busy("the app is stopping")
            if len(self.sessions) >= self.opts.max_sessions:
                raise Busy(f"the app has {len(self.sessions)} open pages, its limit (--max-sessions): close one, "
                           "or try again later")  # fmt: skip
            s = Session(self.root)
            self.sessions[s.id] = s
        return s

    def session(self, sid: str | None) -> Session:
        with self.lock:
            s = self.sessions.get(sid or "")
            if s is None:
                raise UserError("this page's session is unknown (the app restarted, or the session was closed): "
                                "reload the page")  # fmt: skip
            s.used = time.monotonic()
            return s

    def close_session(self, s: Session, reason: str = "cancelled: the page's session was closed") -> None:
        """Remove a session: its jobs are stopped, its folder removed once none runs (none can write there after)."""
        with self.lock:
            self.sessions.pop(s.id, None)
            s.closed = True
            jobs = s.active_jobs()
        for j in jobs:
            j.stop(reason)
        self._tidy_closed(s)

    def _tidy_closed(self, s: Session) -> None:
        with self.lock:
            gone = s.closed and not s.active_jobs()
        if gone:
            shutil.rmtree(s.dir, ignore_errors=True)

    def _expire_idle(self) -> None:
        now = time.monotonic()
        with self.lock:
            idle = [s for s in self.sessions.values() if now - s.used > self.opts.session_idle and not s.active_jobs()]
        for s in idle:
            self.close_session(s)

    def _watch(self) -> None:
        """Stop jobs over the time limit; close idle sessions."""
        while not self.closing.wait(0.25):
            now = time.monotonic()
            with self.lock:
                jobs = [j for s in self.sessions.values() for j in s.jobs.values() if j.state == "running"]
            for j in jobs:
                if now - j.started > self.opts.job_seconds:
                    j.stop(f"stopped: the job ran longer than the app's limit of {self.opts.job_seconds:g} s "
                           "(--job-timeout); use fewer frames or tuning steps")  # fmt: skip
            self._expire_idle()

    def close(self, wait: float = 60.0) -> bool:
        """Stop every job (waiting up to `wait` seconds for them) and remove the temporary root. Returns whether every
        job thread ended."""
        self.closing.set()
        with self.lock:
            sessions = list(self.sessions.values())
            jobs = [j for s in sessions for j in s.jobs.values()]
            self.sessions.clear()
        for s in sessions:
            s.closed = True
        for j in jobs:
            j.stop("cancelled: the app is stopping")
        end = time.monotonic() + wait
        for j in jobs:
            if j.thread is not None:
                j.thread.join(max(0.0, end - time.monotonic()))
        shutil.rmtree(self.root, ignore_errors=True)
        return not any(j.thread is not None and j.thread.is_alive() for j in jobs)

    # -- weights and inputs -----------------------------------------------------------------------------------
    def require(self, names) -> None:
        """The converter message for those of `names` whose converted checkpoints were missing at start."""
        missing = {n: self.paths[n] for n in names if n not in self.loaded}
        if missing:
            check_paths(missing)
            raise UserError(f"the networks {', '.join(missing)} were missing when the app started: restart it")

    def upload_path(self, s: Session, slot: str, name: str) -> pathlib.Path:
        """Where an upload to `slot` named `name` is written (a new folder of the session's); `UserError` for an
        unknown slot or file type."""
        if slot not in SLOTS:
            raise UserError(f"unknown upload slot {str(slot)[:20]!r}; use one of {', '.join(SLOTS)}")
        name = pathlib.Path(name or "").name
        ext = pathlib.Path(name).suffix.lower()
        if ext not in SLOTS[slot]:
            raise UserError(f"{name[:80] or '(no name)'}: unsupported file type {ext[:12] or '(no extension)'} for "
                            f"the {slot}; use one of {' '.join(SLOTS[slot])}")  # fmt: skip
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", pathlib.Path(name).stem)[:60] or "upload"
        with self.lock:
            if s.closed:
                raise UserError("this page's session was closed: reload the page")
            s.uploads_made += 1
            folder = s.dir / "uploads" / f"{slot}-{s.uploads_made}"
        folder.mkdir(parents=True)
        return folder / f"{stem}{ext}"

    def accept_upload(self, s: Session, slot: str, name: str, path: pathlib.Path) -> dict:
        """Check a written upload (headers and caps first, then what the pipeline reads of it) and make it the slot's
        file; on any failure its folder is removed."""
        name = pathlib.Path(name or "").name
        try:
            info = self.check_input(slot, path, name)
            size = path.stat().st_size  # now: a later upload to the slot may replace (remove) this one at once
            with self.lock:
                if s.closed:
                    raise UserError("this page's session was closed: reload the page")
                old = s.uploads.get(slot)
                s.uploads[slot] = (path, name)
                s.headers[path] = info
        except BaseException as e:
            shutil.rmtree(path.parent, ignore_errors=True)
            if isinstance(e, UserError):
                raise UserError(str(e).replace(str(path), name)) from None
            raise
        if old is not None and not self._in_use(s, old[0]):
            shutil.rmtree(old[0].parent, ignore_errors=True)
            s.headers.pop(old[0], None)
        out = {"name": name, "bytes": size, "kind": info.kind}
        if info.size:
            out["size"] = list(info.size)
        if info.kind == "video" and slot == "driving":
            out |= {"frames": info.frames, "fps": info.fps, "max_frames": self.opts.max_frames}
        return out

    def upload(self, s: Session, slot: str, name: str, data: bytes) -> dict:
        """Store an uploaded file (already in memory) in the session's folder and check it."""
        if len(data) > self.opts.max_upload_mb * 2**20:
            raise UserError(f"{name}: larger than the app's limit of {self.opts.max_upload_mb:g} MB (--max-upload-mb)")
        path = self.upload_path(s, slot, name)
        try:
            path.write_bytes(data)
        except BaseException:
            shutil.rmtree(path.parent, ignore_errors=True)
            raise
        return self.accept_upload(s, slot, name, path)

    def _in_use(self, s: Session, path: pathlib.Path) -> bool:
        return bool(s.active_jobs()) or path in (p for p, _ in s.uploads.values())

    def check_input(self, slot: str, path: pathlib.Path, name: str | None = None) -> uploads.Header:
        """The header of an input (caps checked before decoding), then, for a photo source, its first frame read
        as the pipeline reads it (a damaged file fails here, not in a job)."""
        name = name or path.name
        info = uploads.inspect(path, name, self.opts.limits)
        if info.kind == "latent":
            nets = self.bundle[0]
            n_latent = nets.g.n_latent if nets.g is not None else 14
            editing.load_latent_source(path, n_latent)
        elif slot in ("source", "edit"):
            if info.kind == "image":
                images_lib.read_image(path)
            else:
                next(iter(video_lib.iter_frames(path, max_frames=1)))
        return info

    def header_of(self, s: Session, path: pathlib.Path) -> uploads.Header:
        h = s.headers.get(path) or self.headers.get(path)
        if h is None:
            h = self.headers[path] = uploads.inspect(path, path.name, self.opts.limits)
        return h

    def input_path(self, s: Session, slot: str, which: str | None) -> pathlib.Path:
        if which not in ("example", "upload", None):
            raise UserError(f'{slot}: {str(which)[:20]!r}: use "upload" or "example"')
        if which == "example":
            kind = "driving" if slot == "driving" else "source"
            p = example_path(kind)
            if p is None:
                raise UserError(f"the shipped example {kind} is not in this installation ({EXAMPLES[kind].name})")
            return p
        if slot not in s.uploads:
            raise UserError(f"no {slot} file: upload one (or pick the example)")
        return s.uploads[slot][0]

    def source_for(self, s: Session, path: pathlib.Path, tune: bool, steps: int):
        """The prepared source of a photo (crop, p, W+, tuned generator), once per session and setting."""
        key = (hashlib.sha256(path.read_bytes()).hexdigest(), tune and steps > 0, steps if tune else 0)
        if key in s.sources:
            s.sources.move_to_end(key)
            return s.sources[key]
        if self.pre is None:
            self.require(["sfd", "fan"])
        nets, variables = self.bundle
        src = prepare_source(nets, variables, self.space.layout, self.pre, path, tune, steps, self.opts.progress)
        s.sources[key] = src
        while len(s.sources) > SOURCES_PER_SESSION:
            s.sources.popitem(last=False)
        return src

    # -- jobs -------------------------------------------------------------------------------------------------
    def start_job(self, s: Session, kind: str, work) -> dict:
        """Run `work(job)` in a thread, after the jobs before it (one on the device at a time); `Busy` when the
        queue or the session's share of it is full."""
        job = Job(secrets.token_urlsafe(8), kind)
        with self.lock:
            if self.closing.is_set() or s.closed:
                raise Busy("the app is stopping" if self.closing.is_set() else "this page's session was closed")
            if len(s.active_jobs()) >= JOBS_PER_SESSION:
                raise Busy(f"this page has {JOBS_PER_SESSION} jobs queued or running: wait for one, or cancel it")
            active = sum(len(x.active_jobs()) for x in self.sessions.values())
            if active >= self.opts.queue:
                raise Busy(f"the app's queue is full ({active} jobs, --queue {self.opts.queue}): try again later")
            s.jobs = {k: j for k, j in s.jobs.items() if j.active}
            s.jobs[job.id] = job
            job.thread = threading.Thread(target=self._job_thread, args=(s, job, work), name=f"job-{kind}-{job.id}",
                                          daemon=True)  # fmt: skip
        job.thread.start()
        return self.job_status(s, job.id)

    def _job_thread(self, s: Session, job: Job, work) -> None:
        try:
            self._run_job(s, job, work)
        except JobStopped:  # delivered just after the work returned
            job.end("cancelled")
        finally:
            self._tidy_closed(s)

    def _run_job(self, s: Session, job: Job, work) -> None:
        while not self.device.acquire(timeout=0.1):  # queued: leave the queue when stopped
            if job.stop_reason is not None:
                job.end("cancelled")
                return
        try:
            if not job.begin():
                job.end("cancelled")
                return
            try:
                result = work(job)
            except UserError as e:
                job.end("error", s.tidy(str(e)))
            except JobStopped:
                job.end("cancelled")
            except Exception as e:  # shown in the page without paths; the traceback goes to the server's log
                traceback.print_exc(file=sys.stderr)
                job.end("error", f"internal error ({type(e).__name__}); see the app's log")
            else:
                job.end("done", result=result)
        finally:
            self.device.release()

    def cancel(self, s: Session, job_id: str) -> dict:
        job = s.jobs.get(str(job_id))
        if job is None:
            raise UserError(f"unknown job {str(job_id)[:20]!r}")
        job.stop("cancelled")
        end = time.monotonic() + 2.0  # a queued job leaves at once; a running one at its next Python step
        while job.active and time.monotonic() < end:
            time.sleep(0.02)
        return self.job_status(s, job.id)

    def job_status(self, s: Session, job_id: str) -> dict:
        job = s.jobs.get(str(job_id))
        if job is None:
            raise UserError(f"unknown job {str(job_id)[:20]!r}")
        end = job.finished or time.monotonic()
        out = {"job": job.id, "kind": job.kind, "state": job.state, "seconds": round(end - job.started, 1)}
        if job.state == "running":
            out["bars"] = live_bars() or [{"desc": job.stage or "working", "n": 0, "total": None}]
        if job.state == "queued":
            out["bars"] = [{"desc": "waiting for the job before it", "n": 0, "total": None}]
        if job.active and job.stop_reason:
            out["bars"] = [{"desc": "stopping", "n": 0, "total": None}]
        if job.message:
            out["error"] = job.message
        if job.result is not None:
            out["result"] = job.result
        return out

    # -- reenact ----------------------------------------------------------------------------------------------
    def reenact(self, s: Session, req: dict) -> dict:
        """Start a reenactment job (`inference.reenactment.run` on the loaded networks)."""
        src = self.input_path(s, "source", req.get("source"))
        drv = self.input_path(s, "driving", req.get("driving"))
        component = str(req.get("component") or "all")[:40]
        gains = str(req.get("gains") or "")[:2000].replace(",", " ").split()
        parsed = motion_lib.parse_gains(gains)
        if parsed is not None and not all(np.isfinite(g) and abs(g) <= MAX_GAIN for g in parsed):
            raise UserError(f"gains: each gain must be a finite number in -{MAX_GAIN:g}..{MAX_GAIN:g}")
        smooth = number(req, "smooth", 0.0, MAX_SMOOTH)
        motion = motion_lib.MotionOptions(str(req.get("mode") or "absolute")[:40], parsed, component, smooth)
        tune = boolean(req, "tune", True)
        steps = whole_number(req, "tune_steps", 200, 0, MAX_TUNE_STEPS)
        cap = self.opts.max_frames
        max_frames = whole_number(req, "max_frames", cap, 1, cap)
        head = self.header_of(s, drv)
        n_frames = min(max_frames, head.frames or 1)
        with self.lock:
            s.runs += 1
            out = s.dir / "reenact" / f"{s.runs:03d}"
            previous = sorted((s.dir / "reenact").glob("[0-9]*"))
            for old in previous[: max(0, len(previous) - RUNS_KEPT + 1)]:
                shutil.rmtree(old, ignore_errors=True)
        opts = reenactment.Options(
            source=str(src),
            out=str(out),
            driving=str(drv),
            motion=motion,
            tune=tune,
            tune_steps=steps,
            batch_size=max(1, min(self.opts.batch_size, n_frames)),
            max_frames=max_frames,
            weights=dict(self.paths),
            tiny=self.opts.tiny,
            seed=self.opts.seed,
            progress=self.opts.progress,
        )
        self.require(reenactment.needed_weights(opts, self.locate))

        def work(job):
            job.stage = "source: face, DECA, e4e" + (", generator tuning" if tune and steps else "")
            source = self.source_for(s, src, tune, steps)
            job.stage = "driving frames, rendering, writing the videos"
            summary = reenactment.run(opts, bundle=self.bundle, preprocessor=self.pre, source=source)
            summary = {**summary, "source": s.tidy(summary["source"]), "driving": s.tidy(summary["driving"])}
            text = reenactment.format_summary(summary, "(session folder)")
            videos = {
                n: s.url(out / f"{n}.mp4") for n in ("reenacted", "grid", "pasted") if (out / f"{n}.mp4").exists()
            }
            return {
                "summary": summary,
                "text": "\n".join(line for line in s.tidy(text).splitlines() if not line.startswith("wrote ")),
                "videos": videos,
                "summary_url": s.url(out / "summary.json"),
            }

        return self.start_job(s, "reenact", work)

    # -- edit -------------------------------------------------------------------------------------------------
    def edit_source(self, s: Session, req: dict) -> dict:
        """Start a job that loads the edit tab's source: a photo (prepared and cached) or a `.npy` latent."""
        path = self.input_path(s, "edit", req.get("source"))
        latent = path.suffix.lower() == ".npy"
        tune = boolean(req, "tune", True)
        steps = whole_number(req, "tune_steps", 200, 0, MAX_TUNE_STEPS)
        label = "example" if req.get("source") == "example" else s.uploads["edit"][1]
        eopts = editing.Options(source=str(path), out=str(s.dir), directions=[0], tune=tune, tune_steps=steps)
        self.require(editing.needed_weights(eopts, latent, self.locate))

        def work(job):
            job.stage = (
                "latent: render, DECA"
                if latent
                else "source: face, DECA, e4e" + (", generator tuning" if tune and steps else "")
            )
            nets, variables = self.bundle
            if latent:
                w, g_vars, p, shown = editing.latent_source_parts(nets, variables, self.space.layout, path)
            else:
                src = self.source_for(s, path, tune, steps)
                w, g_vars, p, shown = src.w, src.g_vars, src.p, src.crop
            start = editing.start_units(p, self.space)
            s.edit = EditState(np.asarray(w), g_vars, np.asarray(shown), start, label)
            folder = s.dir / "edit"
            folder.mkdir(exist_ok=True)
            atomic_write_bytes(folder / "source.png", png_bytes(shown))
            return {
                "label": label,
                "latent": latent,
                "tuned": bool(not latent and tune and steps > 0),
                "directions": self.names,
                "start": [round(float(x), 3) for x in start],
                "source_url": s.url(folder / "source.png") + f"?t={time.time_ns()}",
            }

        return self.start_job(s, "edit-source", work)

    def _edit_state(self, s: Session) -> EditState:
        if s.edit is None:
            raise UserError("load a photo or a .npy latent in the Edit tab first")
        return s.edit

    def _dp(self, req: dict) -> np.ndarray:
        d = self.space.layout.num_directions
        try:
            dp = np.asarray(req.get("dp"), np.float32).reshape(-1)
        except (TypeError, ValueError):
            raise UserError(f"dp: expected {d} numbers") from None
        if dp.shape != (d,) or not np.all(np.isfinite(dp)):
            raise UserError(f"dp: expected {d} finite numbers, got {dp.shape[0]}")
        return np.clip(dp, -2 * SLIDER_RANGE, 2 * SLIDER_RANGE)

    def render(self, s: Session, req: dict) -> bytes:
        """PNG of G(trunc(w + A·Δp)) for one Δp: one jitted call of one frame, nothing written."""
        st = self._edit_state(s)
        nets, variables = self.bundle
        image = frames.render_dp(nets, variables, st.g_vars, st.w, self._dp(req)[None], 1)[0]
        return png_bytes(image)

    def export_dp(self, s: Session, req: dict) -> dict:
        """Write the current Δp (`dp.npy` [D], and `dp.json` with the direction names) to the session folder."""
        st = self._edit_state(s)
        dp = self._dp(req)
        folder = s.dir / "edit"
        buf = io.BytesIO()
        np.save(buf, dp)
        atomic_write_bytes(folder / "dp.npy", buf.getvalue())
        doc = {"source": st.label, "units": "shift units", "dp": dict(zip(self.names, map(float, dp)))}
        atomic_write_bytes(folder / "dp.json", (json.dumps(doc, indent=2) + "\n").encode())
        return {"npy_url": s.url(folder / "dp.npy"), "json_url": s.url(folder / "dp.json")}

    def sweep(self, s: Session, req: dict) -> dict:
        """Start a job that renders the sweep GIF of one direction (`inference.editing.sweep`)."""
        st = self._edit_state(s)
        d = whole_number(req, "direction", None, 0, self.space.layout.num_directions - 1)

        def work(job):
            job.stage = f"rendering the sweep of {self.names[d]}"
            nets, variables = self.bundle
            shifts, _, frames_ = editing.sweep(nets, variables, st.g_vars, st.w, st.shown, d, float(st.start[d]),
                                               self.opts.batch_size)  # fmt: skip
            path = s.dir / "edit" / f"sweep_{d}_{self.names[d]}.gif"
            atomic_write_bytes(path, editing.gif_bytes(frames_, editing.FPS))
            return {"direction": self.names[d], "frames": len(shifts), "shifts": [round(float(x), 3) for x in shifts],
                    "gif_url": s.url(path) + f"?t={time.time_ns()}"}  # fmt: skip

        return self.start_job(s, "sweep", work)
