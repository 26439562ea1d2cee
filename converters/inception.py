"""pytorch-fid's FID Inception (`pt_inception-2015-12-05-6726825d.pth`, a bare state dict) ->
`jaxreenact.models.inception.FIDInceptionV3`.

    python -m converters.inception pt_inception-2015-12-05-6726825d.pth weights/inception

Key table: `converters.common.rule_table` with the rule "the Flax path joined with dots"
(`params/Mixed_6b/branch7x7dbl_3/conv/weight` <- `Mixed_6b.branch7x7dbl_3.conv.weight`; the names contain
`_<digit>` so ArcFace's `_<n>` -> `.<n>` rule does not apply); conv kernels OIHW -> HWIO. BatchNorm `num_batches_tracked` keys are optional and ignored. The classifier
`fc.weight` [1008, 2048] and `fc.bias` [1008] are checked and dropped (`DROPPED`): FID uses the pool3 features before it.
torchvision's ImageNet Inception (`inception_v3_google-*.pth`: 1000 classes, `AuxLogits.*`) is refused, since its
weights and pooling differ and its FIDs are not comparable.
"""

from __future__ import annotations

from collections.abc import Mapping

from converters.common import as_jax, bare_state_dict, convert_by_template, describe, file_cli, file_save
from jaxreenact.common.errors import ConversionError
from jaxreenact.models.inception import FEATURE_DIM, FID_INPUT_SIZE, FIDInceptionV3

WHAT = "FID Inception (pt_inception-2015-12-05-6726825d.pth)"
FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
)
NUM_CLASSES = 1008


# The classifier: read (its shape checked) and dropped, since FID uses the pool3 features before it.
DROPPED = {"fc.weight": (NUM_CLASSES, FEATURE_DIM), "fc.bias": (NUM_CLASSES,)}


def convert_state_dict(sd: Mapping, source: str):
    """A pytorch-fid FID Inception state dict (numpy arrays) -> (FIDInceptionV3 module, variables)."""
    sd = dict(sd)
    if any(k.startswith("AuxLogits.") for k in sd) or (
        "fc.weight" in sd and tuple(sd["fc.weight"].shape) == (1000, FEATURE_DIM)
    ):
        raise ConversionError(
            f"{source}: this is torchvision's ImageNet Inception-v3, not the FID Inception; download "
            f"pt_inception-2015-12-05-6726825d.pth from {FID_WEIGHTS_URL}"
        )
    if "Mixed_7c.branch_pool.conv.weight" not in sd or "Conv2d_1a_3x3.conv.weight" not in sd:
        raise ConversionError(f"{source}: not the FID Inception state dict; this looks like {describe(sd)}")
    module = FIDInceptionV3()
    shape = (1, FID_INPUT_SIZE, FID_INPUT_SIZE, 3)
    return module, as_jax(convert_by_template(module, sd, source, shape, ".".join, dropped=DROPPED))


def load_torch(path):
    """`pt_inception-2015-12-05-6726825d.pth` (bare state dict) -> (FIDInceptionV3 module, variables)."""
    return convert_state_dict(bare_state_dict(path, WHAT), str(path))


save = file_save("inception", load_torch, "pt_inception", lambda m: f"FID Inception-v3, pool3 features {FEATURE_DIM}")


def main(argv=None):
    file_cli("inception", "Convert pytorch-fid's FID Inception-v3 to a jaxreenact checkpoint.",
             f"pytorch-fid's pt_inception-2015-12-05-6726825d.pth (from {FID_WEIGHTS_URL})", save, argv)  # fmt: skip


if __name__ == "__main__":
    main()
