"""Convert face-alignment's S3FD detector checkpoint (`s3fd-619a316812.pth`, a plain state dict of `s3fd`) to
jaxreenact's `jaxreenact.models.sfd.S3FD`.

Keys: `conv1_1` ... `conv7_2`, `fc6`, `fc7` (weight + bias), the L2Norm scales `conv3_3_norm.weight`,
`conv4_3_norm.weight`, `conv5_3_norm.weight`, and the heads `{conv3_3_norm,conv4_3_norm,conv5_3_norm,fc7,conv6_2,
conv7_2}_mbox_{conf,loc}`. Conv kernels OIHW -> HWIO. Every key must be used, none may be missing.
"""

from __future__ import annotations

from converters.common import convert_by_template, file_cli, file_save, to_numpy, torch_load, unwrap_state_dict
from jaxreenact.common.errors import ConversionError
from jaxreenact.models.sfd import S3FD


def load_torch(path):
    """Read an S3FD checkpoint strictly; return `(module, variables)`."""
    sd_raw = unwrap_state_dict(torch_load(path, "S3FD detector (s3fd-619a316812.pth)"), path, "S3FD")
    if "conv3_3_norm_mbox_conf.weight" not in sd_raw:
        raise ConversionError(f"{path}: not an S3FD checkpoint (no 'conv3_3_norm_mbox_conf.weight')")
    module = S3FD()
    # S3FD keys have no numbered submodules: the Flax path joined with dots is the PyTorch key.
    return module, convert_by_template(module, to_numpy(sd_raw, str(path)), str(path), (1, 128, 128, 3), ".".join)


save = file_save("sfd", load_torch, "s3fd", lambda m: "S3FD face detector")


def main(argv=None):
    file_cli("sfd", "Convert face-alignment's S3FD face detector to a jaxreenact checkpoint.",
             "face-alignment's s3fd-619a316812.pth (an S3FD state dict)", save, argv)  # fmt: skip


if __name__ == "__main__":
    main()
