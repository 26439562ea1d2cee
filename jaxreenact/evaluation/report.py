"""Reports of `python -m jaxreenact.evaluate`: per-video CSVs, plots (SVG) and grids, `results.json` and
`table1.md` (the paper's Table 1 layout with the paper's row beside ours). Every file is written atomically."""

from __future__ import annotations

import datetime
import html
import json
import pathlib
import subprocess

import numpy as np

import jaxreenact
from jaxreenact.common.files import atomic_write_bytes
from jaxreenact.common.images import labelled_grid
from jaxreenact.data.images import encode_png
from jaxreenact.evaluation import metrics

# The paper's Table 1 row "Ours" (BMVC 2022). Exp is the raw form (see metrics.EXP_RAW).
PAPER = {
    "self": {"csim": 0.66, "lpips": 0.11, "fid": 35.0, "nme": 14.1, "pose": 1.1, metrics.EXP_RAW: 0.8},
    "cross": {"csim": 0.63, "pose": 1.4, metrics.EXP_RAW: 1.2},
}
TABLE_COLUMNS = {
    "self": [("CSIM ↑", "csim"), ("LPIPS ↓", "lpips"), ("FID ↓", "fid"), ("NME ↓", "nme"), ("Pose ↓", "pose"),
             ("Exp. ↓", metrics.EXP_RAW)],
    "cross": [("CSIM ↑", "csim"), ("Pose ↓", "pose"), ("Exp. ↓", metrics.EXP_RAW)],
}  # fmt: skip
CSV_COLUMNS = ("csim", "lpips", "nme", "nme_interocular", "pose", metrics.EXP_RAW, metrics.EXP_NORM)


# ----------------------------------------------------------------------------------------------- per video
def to_csv(res: dict) -> str:
    """One row per frame: its validity flags and metrics; the metrics of an excluded frame (no face in its driving or
    reenacted image) are left empty, as they are never scored."""
    cols = [c for c in CSV_COLUMNS if c in res]
    lines = ["frame,valid_driving,valid_reenacted," + ",".join(cols)]
    scored = np.asarray(res["valid_driving"], bool) & np.asarray(res["valid_reenacted"], bool)
    for i, name in enumerate(res["frames"]):
        vals = [f"{float(res[c][i]):.6g}" if scored[i] and np.isfinite(res[c][i]) else "" for c in cols]
        lines.append(f"{name},{int(res['valid_driving'][i])},{int(res['valid_reenacted'][i])}," + ",".join(vals))
    return "\n".join(lines) + "\n"


def line_plot_svg(series: dict[str, np.ndarray], title: str, width: int = 640, height: int = 200) -> str:
    """A small SVG with one panel per series (per-frame values; NaN = a gap), y axis from 0 to the max."""
    colors = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
    panels = []
    ph = height
    for k, (name, v) in enumerate(series.items()):
        v = np.asarray(v, np.float64)
        y0 = k * (ph + 20) + 30
        finite = v[np.isfinite(v)]
        top = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        n = max(len(v) - 1, 1)
        pts, segs = [], []
        for i, x in enumerate(v):
            if np.isfinite(x):
                pts.append(f"{50 + i / n * (width - 70):.1f},{y0 + ph - x / top * ph:.1f}")
            elif pts:
                segs.append(pts)
                pts = []
        if pts:
            segs.append(pts)
        lines = "".join(f'<polyline fill="none" stroke="{colors[k % 4]}" stroke-width="1.5" points="{" ".join(s)}"/>'
                        for s in segs)  # fmt: skip
        panels.append(
            f'<rect x="50" y="{y0}" width="{width - 70}" height="{ph}" fill="none" stroke="#999"/>'
            f'<text x="52" y="{y0 - 4}" font-size="12">{html.escape(name)} (max {top:.3g}; frames 0..{len(v) - 1})</text>'
            f'<text x="4" y="{y0 + 10}" font-size="10">{top:.3g}</text><text x="4" y="{y0 + ph}" font-size="10">0</text>'
            + lines
        )
    total_h = len(series) * (ph + 20) + 30
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{total_h}">'
            f'<text x="4" y="14" font-size="13">{html.escape(title)}</text>' + "".join(panels) + "</svg>\n")  # fmt: skip


def item_files(workdir: pathlib.Path, item) -> list[pathlib.Path]:
    """The per-video reports: CSV, plot, grid."""
    return [workdir / item.kind / f"{item.key}.csv", workdir / "plots" / f"{item.kind}_{item.key}.svg",
            workdir / "grids" / f"{item.kind}_{item.key}.png"]  # fmt: skip


def item_written(workdir: pathlib.Path, item) -> bool:
    return all(f.is_file() for f in item_files(workdir, item))


def write_item(workdir: pathlib.Path, item, res: dict) -> None:

    csv_file, plot_file, grid_file = item_files(workdir, item)
    atomic_write_bytes(csv_file, to_csv(res).encode())
    valid = res["valid_driving"] & res["valid_reenacted"]
    shown = {k: np.where(valid, res[k], np.nan) for k in ("pose", "csim")}
    title = f"{item.kind}: {item.source}" + (f" driven by {item.driving}" if item.kind == "cross" else "")
    shown = {"pose error (deg)": shown["pose"], "CSIM": shown["csim"]}
    atomic_write_bytes(plot_file, line_plot_svg(shown, title).encode())
    g = np.asarray(res["grid"])  # [k, H, 3·W, 3]: source | driving | reenacted per shown frame
    tiles = g.reshape(g.shape[0], g.shape[1], 3, g.shape[2] // 3, g.shape[3]).transpose(0, 2, 1, 3, 4)
    names = [f"frame {n}" for n in res["grid_names"]] if "grid_names" in res else None
    grid = labelled_grid(tiles.reshape(-1, *tiles.shape[2:]), nrow=3, row_labels=names,
                         col_labels=("source", "driving (target)", "reenacted"))  # fmt: skip
    atomic_write_bytes(grid_file, encode_png(grid))


# ----------------------------------------------------------------------------------------------- aggregation
def code_version() -> str:

    try:
        root = pathlib.Path(jaxreenact.__file__).resolve().parents[1]
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=root, capture_output=True, text=True,
                             timeout=10)  # fmt: skip
        if out.returncode == 0 and out.stdout.strip():
            return f"{jaxreenact.__version__}+git.{out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    return jaxreenact.__version__


def _summ(values, valid) -> dict:
    s = metrics.summarize(values, valid)
    return {"mean": float(s.mean), "std": float(s.std), "n": s.n_valid}


def aggregate(config, per_item: dict, sha: dict) -> dict:
    out = {"config": json.loads(config.to_json()), "code_version": code_version(), "weights_sha256": sha,
           "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}  # fmt: skip
    for kind in ("self", "cross"):
        done = {k: r for k, (it, r) in per_item.items() if it.kind == kind and r["status"] == "ok"}
        skipped = {k: r["status"] for k, (it, r) in per_item.items() if it.kind == kind and r["status"] != "ok"}
        if not done and not skipped:
            continue
        sec = {"videos": len(done), "videos_skipped": skipped}
        if done:
            vd = np.concatenate([r["valid_driving"] for r in done.values()])
            vr = np.concatenate([r["valid_reenacted"] for r in done.values()])
            ok = vd & vr
            sec.update(frames=int(len(ok)), frames_scored=int(ok.sum()), no_face_driving=int((~vd).sum()),
                       no_face_reenacted=int((vd & ~vr).sum()))  # fmt: skip
            names = [m for m in CSV_COLUMNS if m in next(iter(done.values()))]
            sec["metrics"] = {m: _summ(np.concatenate([r[m] for r in done.values()]), ok) for m in names}
            if kind == "self":
                fr = np.concatenate([r["feats_reenacted"] for r in done.values()])
                fd = np.concatenate([r["feats_driving"] for r in done.values()])
                fid = metrics.fid_from_features(fr, fd) if min(len(fr), len(fd)) >= 2 else float("nan")
                sec["metrics"]["fid"] = {"mean": float(fid), "std": None, "n": int(len(fr))}
            sec["per_video"] = {
                k: {m: _summ(r[m], r["valid_driving"] & r["valid_reenacted"])["mean"] for m in names}
                for k, r in done.items()
            }
        out[kind] = sec
    return out


def _fmt(v) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.3g}" if abs(v) < 100 else f"{v:.1f}"


def table1(results: dict) -> str:
    head, sep, paper, ours = ["Method"], ["---"], ["Ours (paper, Table 1)"], ["jaxreenact (this run)"]
    for kind in ("self", "cross"):
        for label, key in TABLE_COLUMNS[kind]:
            head.append(f"{kind.capitalize()} {label}")
            sep.append("---:")
            paper.append(_fmt(PAPER[kind].get(key)))
            ours.append(_fmt(results.get(kind, {}).get("metrics", {}).get(key, {}).get("mean")))
    rows = [head, sep, paper, ours]
    text = "\n".join("| " + " | ".join(r) + " |" for r in rows) + "\n"
    notes = ["", "Exp. is the paper's raw form (mean |Δ| of [jaw, exp0..10]); NME is ×10³ normalised by √(landmark "
             "box area)."]  # fmt: skip
    for kind in ("self", "cross"):
        sec = results.get(kind)
        if not sec or "metrics" not in sec:
            continue
        m = sec["metrics"]
        extra = f"exp_norm (authors' validation form) {_fmt(m[metrics.EXP_NORM]['mean'])}"
        if "nme_interocular" in m:
            extra += f", NME inter-ocular ×10³ {_fmt(m['nme_interocular']['mean'])}"
        unit = "videos" if kind == "self" else "pairs"
        notes.append(f"{kind}: {sec['videos']} {unit}, {sec['frames_scored']} of {sec['frames']} frames scored "
                     f"({sec['no_face_driving']} without a face in the driving frame, {sec['no_face_reenacted']} in "
                     f"the reenacted frame, excluded); {extra}.")  # fmt: skip
        if sec["videos_skipped"]:
            notes.append(f"{kind}: skipped {', '.join(f'{k} ({v})' for k, v in sec['videos_skipped'].items())}.")
    if results.get("config", {}).get("tiny"):
        notes.append("NOTE: random tiny networks (configs/eval.py:tiny): these numbers mean nothing.")
    return text + "\n".join(notes) + "\n"


def write_all(workdir: pathlib.Path, results: dict) -> None:
    atomic_write_bytes(workdir / "results.json", (json.dumps(results, indent=2, default=float) + "\n").encode())
    atomic_write_bytes(workdir / "table1.md", table1(results).encode())
