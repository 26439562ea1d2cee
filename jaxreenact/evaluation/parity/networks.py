"""The six network kinds, and the converted networks every kind runs on.

`Networks` converts a folder's component files through `converters.<name>.load_torch` on first use (torch is
needed from that point only). Each kind maps every expected array of its spec to the port's computation on the
spec's inputs, reading shapes, batch, truncation and the rest from the inputs and the spec (never from one
folder's shapes): the StyleGAN2 intermediates and truncated paths are named `<run>_<layer>_out`,
`img_from_<run>`, `latent_from_<run>` with `<run>` = z or wplus (+ `_trunc`); the identity and shape losses pair
each sample with the permutation their spec writes (`img[[1, 0]]`, `p[[1, 2, 3, 4, 5, 0]]`; default: the next
sample). An expected array no rule covers is a failing row, so a new array is never skipped silently.
"""

from __future__ import annotations

import json
import re

import jax
import jax.numpy as jnp
import numpy as np

from converters import arcface as arcface_conv
from converters import deca as deca_conv
from converters import direction_matrix as direction_matrix_conv
from converters import e4e as e4e_conv
from converters import lpips as lpips_conv
from converters import stylegan2 as stylegan2_conv
from jaxreenact.common.errors import UserError
from jaxreenact.evaluation.parity.registry import register
from jaxreenact.evaluation.parity.report import Rows, image_input, nchw, progress
from jaxreenact.evaluation.parity.spec import Checkpoints, Component
from jaxreenact.latent import directions, render
from jaxreenact.models.arcface import id_crop, identity_loss
from jaxreenact.models.deca import batch_orth_proj
from jaxreenact.models.lpips import lpips_loss, per_layer
from jaxreenact.pose.deca import geometry as deca_geometry
from jaxreenact.pose.rotations import axis_to_euler_deg, euler_batch_call_quirk
from jaxreenact.training import losses


# ----------------------------------------------------------------------------------------------- helpers
def permutation(entry: dict | None, batch: int) -> np.ndarray:
    """The sample pairing an upstream call writes as `x[[1, 0]]` in its spec entry; else each sample's next one."""
    m = re.search(r"\[\[\s*(\d+(?:\s*,\s*\d+)*)\s*\]\]", (entry or {}).get("upstream", ""))
    if m:
        perm = np.array([int(t) for t in m.group(1).split(",")])
        if len(perm) == batch and sorted(perm.tolist()) == list(range(batch)):
            return perm
    return np.roll(np.arange(batch), -1)


def _entry(comp: Component, what: str, pred) -> dict:
    hits = [e for e in comp.entries() if pred(e)]
    if not hits:
        raise UserError(f"{comp.spec_path}: the {comp.name} files name no {what}")
    return hits[0]


def _group(e: dict) -> str | None:
    lay = e.get("layout") or {}
    src = lay.get("") if isinstance(lay, dict) else None
    return src.get("group") if isinstance(src, dict) else None


def _torch(e):
    return e.get("format", "torch") == "torch"


def _files(comp: Component, name: str) -> dict[str, dict]:
    """role -> file entry of network `name` (a component name, or e4e_psp), as its converter takes them."""
    if name in ("generator", "A", "id_loss"):
        return {"file": _entry(comp, "PyTorch file", _torch)}
    if name == "lpips":
        alex = _entry(comp, "AlexNet file", lambda e: _torch(e) and (_group(e) == "alexnet" or "alexnet" in e["file"]))
        lin = _entry(comp, "LPIPS heads file", lambda e: _torch(e) and e is not alex)
        return {"alexnet": alex, "lin": lin}
    if name == "deca":
        flame = [e for e in comp.entries() if e.get("format") == "flame_pkl"] or [
            e for e in comp.entries() if e.get("format") == "flame_pkl_chumpy"
        ]
        if not flame:
            raise UserError(f"{comp.spec_path}: the deca files name no FLAME pickle")
        return {
            "tar": _entry(comp, "deca_model.tar", _torch),
            "flame": flame[0],
            "landmarks": _entry(comp, "landmark embedding", lambda e: e.get("format") == "flame_landmarks"),
        }
    if name == "e4e":  # the layout a file holds decides
        return {"file": _entry(comp, "official e4e file ({'e': ...})", lambda e: "e" in (e.get("layout") or {}))}
    if name == "e4e_psp":
        return {"file": _entry(comp, "pSp-layout e4e file", lambda e: "state_dict" in (e.get("layout") or {}))}
    raise UserError(f"{comp.spec_path}: unknown component {name!r}")


def required_files(comps: dict[str, Component]) -> list[tuple[Component, dict]]:
    """Every (component, file entry) the converters of a folder's components read (both e4e layouts, where named)."""
    out = []
    for name, comp in comps.items():
        for n in ("e4e", "e4e_psp") if name == "e4e" else (name,):
            if n == "e4e_psp" and not any("state_dict" in (e.get("layout") or {}) for e in comp.entries()):
                continue  # a recorded folder names only the authors' file (its codes need no latent_avg)
            out += [(comp, e) for e in _files(comp, n).values()]
    return out


class Networks:
    """`get(name)` -> (module, variables) of a component, converted from its upstream files on first use.
    Names: generator, deca, id_loss, lpips, A, e4e (official layout), e4e_psp (the pSp layout, with latent_avg).

    `shared` (a dict) carries conversions across folders: a component whose weights, FLAME model and used files
    are those of one already converted (a pipeline's `same_weights_as` network) is not converted again."""

    def __init__(self, comps: dict[str, Component], checkpoints: Checkpoints, shared: dict | None = None):
        self.comps, self.ckpt = comps, checkpoints
        self.cache = {} if shared is None else shared

    def _roles(self, name: str) -> tuple[Component, dict[str, dict]]:
        comp_name = "e4e" if name == "e4e_psp" else name
        comp = self.comps.get(comp_name)
        if comp is None:
            raise UserError(f"this golden spec has no {comp_name!r} component (it has {', '.join(self.comps)})")
        return comp, _files(comp, name)

    def get(self, name: str):
        comp, roles = self._roles(name)
        used = {r: (e["file"], e.get("format"), e.get("layout")) for r, e in roles.items()}
        where = str(self.ckpt.weights_dir) if self.ckpt.weights_dir is not None else None
        block = {k: comp.block.get(k) for k in ("weights", "flame")} if where is None else {}
        key = (name, where, json.dumps([block, used], sort_keys=True, default=str))
        if key not in self.cache:
            progress(f"converting {name} ({', '.join(e['file'] for e in roles.values())})")
            self.cache[key] = self._load(name, comp, roles)
        return self.cache[key]

    def _load(self, name: str, comp: Component, roles: dict[str, dict]):
        p = self.ckpt.paths(comp, list(roles.values()))
        f = {r: p[e["file"]] for r, e in roles.items()}
        if name == "generator":
            return stylegan2_conv.load_torch(f["file"])
        if name == "A":
            return direction_matrix_conv.load_torch(f["file"])
        if name == "id_loss":
            return arcface_conv.load_torch(f["file"])
        if name == "lpips":
            return lpips_conv.load_torch(f["alexnet"], f["lin"])
        if name == "deca":
            return deca_conv.load_torch(f["tar"], f["flame"], f["landmarks"])
        return e4e_conv.load_torch(f["file"])


# ----------------------------------------------------------------------------------------------- StyleGAN2
_RUN = re.compile(r"^(img|latent|generate_image)_from_(z|wplus)(_trunc)?$")  # generate_image: pooled to 256²
_FEAT = re.compile(r"^(z|wplus)(_trunc)?_(.+)_out$")


def _feature_key(layer: str) -> str:
    """Golden layer names (conv1, to_rgb1, to_rgbs0) -> the port's sown intermediates (to_rgbs_0_out)."""
    return re.sub(r"^(to_rgbs|convs)(\d+)$", r"\1_\2", layer) + "_out"


@register("stylegan2_vox256")
def stylegan2(spec, inputs, expected, nets):
    g, v = nets.get("generator")
    rows = Rows(spec, expected)
    psi = np.float32(inputs["truncation"]) if "truncation" in inputs else np.float32(0.7)
    trunc = inputs.get("truncation_latent")
    if rows.want("w_from_z"):
        rows.add("w_from_z", jax.jit(lambda v, z: g.apply(v, z, method="mapping"))(v, inputs["z"]))
    runs: dict[tuple[str, bool], dict] = {}
    for name in expected:
        m, f = _RUN.match(name), _FEAT.match(name)
        if m:
            runs.setdefault((m.group(2), bool(m.group(3))), {})[name] = m.group(1)
        elif f:
            runs.setdefault((f.group(1), bool(f.group(2))), {})[name] = _feature_key(f.group(3))

    def synth(v, x, psi, trunc, is_latent):
        (img, lat), st = g.apply(v, x, psi, trunc, is_latent, return_latents=True, mutable=["intermediates"])
        return img, lat, {k: t[0] for k, t in st["intermediates"].items()}

    synth = jax.jit(synth, static_argnums=4)
    for (src, truncated), names in runs.items():
        if src not in inputs:
            continue
        p = psi if truncated else np.float32(1.0)
        is_latent = src == "wplus"
        if set(names.values()) == {"latent"}:  # the truncated latents alone: no synthesis needed
            w = inputs[src] if is_latent else g.apply(v, inputs[src], method="mapping")
            lat = g.apply(v, g.apply(v, w, p, trunc, method="truncate"), method="_as_wplus")
            img, feats = None, {}
        else:
            img, lat, feats = synth(v, inputs[src], p, trunc, is_latent)
        for name, what in names.items():
            if what == "img":
                rows.add(name, nchw(img))
            elif what == "generate_image":  # the authors' generate_image pools a larger generator's image to 256²
                rows.add(name, nchw(render.upstream_size(img)))
            elif what == "latent":
                rows.add(name, lat)
            elif what in feats:
                rows.add(name, nchw(feats[what]))
    return rows.finish()


# ----------------------------------------------------------------------------------------------- e4e
@register("e4e_vox256")
def e4e(spec, inputs, expected, nets):
    rows = Rows(spec, expected)
    x = jnp.asarray(image_input(inputs["x_u8"]))
    if rows.want("codes"):
        m, v = nets.get("e4e")
        rows.add("codes", jax.jit(lambda v, x: m.apply(v, x, False))(v, x))
    if rows.want("codes_plus_avg"):
        m, v = nets.get("e4e_psp")
        rows.add("codes_plus_avg", jax.jit(lambda v, x: m.apply(v, x, True))(v, x))
    return rows.finish()


# ----------------------------------------------------------------------------------------------- ArcFace
@register("irse50_arcface")
def arcface(spec, inputs, expected, nets):
    module, v = nets.get("id_loss")
    rows = Rows(spec, expected)
    embed = jax.jit(module.apply)
    face = jnp.asarray(image_input(inputs["face_u8"])) if "face_u8" in inputs else None
    img = jnp.asarray(image_input(inputs["img_u8"])) if "img_u8" in inputs else None
    if face is not None:
        rows.add("emb_face112", embed(v, face))
    if img is not None:
        pooled = id_crop(img)
        rows.add("pooled_crop112", nchw(pooled))
        rows.add("emb_from256", embed(v, pooled))

    def loss_grad(crop):
        return jax.jit(jax.value_and_grad(lambda v, a, b: identity_loss(v, a, b, crop=crop, module=module), 1))

    if img is not None and rows.want("id_loss_256"):
        perm = permutation(spec["expected"].get("id_loss_256"), img.shape[0])
        rows.add("id_loss_256", loss_grad(True)(v, img, img[perm])[0])
    if face is not None and (rows.want("id_loss_face112") or rows.want("grad_id_loss_face112")):
        perm = permutation(spec["expected"].get("id_loss_face112"), face.shape[0])
        loss, grad = loss_grad(False)(v, face, face[perm])
        rows.add("id_loss_face112", loss)
        rows.add("grad_id_loss_face112", nchw(grad))
    return rows.finish()


# ----------------------------------------------------------------------------------------------- DECA
@register("deca_coarse")
def deca(spec, inputs, expected, nets):
    module, v = nets.get("deca")
    rows = Rows(spec, expected)
    decode = jax.jit(lambda v, c: module.apply(v, c, method="decode"))
    if "image_u8" in inputs:
        x = jnp.asarray(image_input(inputs["image_u8"], deca=True))
        codes = jax.jit(module.apply)(v, x)
        b = x.shape[0]
        parts = ("shape", "tex", "exp", "pose", "cam", "light")
        rows.add("params", jnp.concatenate([codes[k].reshape(b, -1) for k in parts], 1))
        for k in parts:
            rows.add(f"code_{k}", codes[k])
        if any(rows.want(f"enc_decode_{k}") for k in ("landmarks2d", "landmarks3d", "trans_verts")):
            geom = decode(v, codes)
            for k in ("landmarks2d", "landmarks3d", "trans_verts"):
                rows.add(f"enc_decode_{k}", geom[k])
        rows.add("enc_euler_deg", axis_to_euler_deg(codes["pose"][:, :3]))
    if all(k in inputs for k in ("shape", "exp", "pose")):
        s, e, p = (jnp.asarray(inputs[k]) for k in ("shape", "exp", "pose"))
        flame = jax.jit(lambda v, *a: module.apply(v, *a, method="flame_forward"))
        out = flame(v, s, e, p)
        for k in ("vertices", "landmarks2d", "landmarks3d", "dyn_lmk_faces_idx"):
            rows.add(k if k == "dyn_lmk_faces_idx" else f"flame_{k}", out[k])
        if "cam" in inputs:
            cam = jnp.asarray(inputs["cam"])
            rows.add("orth_proj_landmarks2d", batch_orth_proj(out["landmarks2d"], cam))
            rows.add("orth_proj_landmarks3d", batch_orth_proj(out["landmarks3d"], cam))
            geom = decode(v, {"shape": s, "exp": e, "pose": p, "cam": cam})
            for k in ("landmarks2d", "landmarks3d", "trans_verts"):
                rows.add(f"decode_{k}", geom[k])
        if "eye_pose" in inputs or "neck_pose" in inputs:
            eye = jnp.asarray(inputs["eye_pose"]) if "eye_pose" in inputs else None
            neck = jnp.asarray(inputs["neck_pose"]) if "neck_pose" in inputs else None
            ne = flame(v, s, e, p, eye, neck)
            for k in ("vertices", "landmarks2d", "landmarks3d"):
                rows.add(f"neck_eye_{k}", ne[k])
        rows.add("euler_deg", axis_to_euler_deg(p[:, :3]))
        rows.add("euler_deg_batch_call_quirk", euler_batch_call_quirk(p[:, :3]))
        if any(rows.want(f"loss_{k}_cam8") for k in ("shape", "eye", "mouth")):
            perm = permutation(spec["expected"].get("loss_shape_cam8"), s.shape[0])

            @jax.jit
            def shape_losses(v, s, e, p):
                g1 = deca_geometry(module, v, s, e, p)
                g2 = deca_geometry(module, v, s[perm], e[perm], p[perm])
                return losses.shape_losses(g1, g2)

            got = shape_losses(v, s, e, p)
            for k in ("shape", "eye", "mouth"):
                rows.add(f"loss_{k}_cam8", got[k])
    return rows.finish()


# ----------------------------------------------------------------------------------------------- LPIPS
@register("lpips_perceptual")
def lpips(spec, inputs, expected, nets):
    module, v = nets.get("lpips")
    rows = Rows(spec, expected)
    x, y = (jnp.asarray(image_input(inputs[k])) for k in ("x_u8", "y_u8"))
    maps = jax.jit(lambda v, a, b: module.apply(v, a, b, return_maps=True))(v, x, y)
    for i, m in enumerate(maps):
        rows.add(f"lin{i}_map", np.asarray(m)[:, None])
    rows.add("per_layer", per_layer(maps))
    rows.add("per_sample", jax.jit(module.apply)(v, x, y))
    grad = jax.jit(jax.value_and_grad(lambda v, a, b, r: lpips_loss(v, a, b, range_255=r, module=module), 1),
                   static_argnums=3)  # fmt: skip
    if rows.want("lpips") or rows.want("grad_x"):
        loss, g = grad(v, x, y, False)
        rows.add("lpips", loss)
        rows.add("grad_x", nchw(g))
    if rows.want("lpips_255"):
        rows.add("lpips_255", grad(v, x, y, True)[0])
    return rows.finish()


# ----------------------------------------------------------------------------------------------- A
@register("direction_matrix")
def direction_matrix(spec, inputs, expected, nets):
    """Stage by stage: shift = A(dp); the shifted W+ from the expected shift; the image and its truncated latent
    from the expected shifted latent (truncation ψ and centre as the spec's `generator_weights` say)."""
    a, av = nets.get("A")
    rows = Rows(spec, expected)
    rows.add("shift", jax.jit(a.apply)(av, inputs["dp"]))
    shift = expected.get("shift")
    if shift is not None:
        rows.add("shifted_latent", directions.shift_wplus(inputs["wplus"], shift))
    if rows.want("image") or rows.want("image_latent"):
        g, gv = nets.get("generator")
        gw = spec.get("generator_weights") or {}
        psi = np.float32(inputs["truncation"]) if "truncation" in inputs else np.float32(gw.get("truncation", 0.7))
        trunc = inputs.get("truncation_latent")
        if trunc is None:
            if "latent_avg" not in gv["buffers"]:
                raise UserError("direction_matrix: the generator checkpoint has no latent_avg (the truncation centre)")
            trunc = np.asarray(gv["buffers"]["latent_avg"])[None]
        shifted = expected.get("shifted_latent")
        if shifted is None:
            shifted = directions.shift_wplus(inputs["wplus"], a.apply(av, inputs["dp"]))
        img, lat = jax.jit(
            lambda v, w, p, t: g.apply(
                v, w, truncation=p, truncation_latent=t, input_is_latent=True, return_latents=True
            )  # fmt: skip
        )(gv, shifted, psi, trunc)
        # generate_image pools a larger generator's image to 256² (and leaves a smaller one as it is)
        rows.add("image", nchw(render.upstream_size(img)))
        rows.add("image_latent", lat)
    return rows.finish()
