"""Convert face-alignment's 2D-FAN checkpoint (`2DFAN4-11f355bf06.pth.tar`, a plain state dict of `FAN(4)`) to
jaxreenact's `jaxreenact.models.fan.FAN`.

Key layout: `conv1`, `bn1`, `conv2..conv4` (ConvBlocks: `bn1..bn3`, `conv1..conv3`, optional `downsample.0` BatchNorm
and `downsample.2` 1×1 conv), `m{i}.b1_4` ... `m{i}.b2_plus_1` (hourglasses), `top_m_{i}`, `conv_last{i}`,
`bn_end{i}`, `l{i}`, and `bl{i}`/`al{i}` between stacks. BatchNorm `num_batches_tracked` entries are accounted for and
dropped. The number of stacks is read from the file (`l{i}.weight`). A `{'state_dict': ...}` wrapper and a
`module.` prefix (DataParallel) are accepted.
"""

from __future__ import annotations

import functools

from converters.common import (
    convert_by_template,
    file_cli,
    file_save,
    to_numpy,
    torch_key,
    torch_load,
    unwrap_state_dict,
)
from jaxreenact.common.errors import ConversionError
from jaxreenact.models.fan import FAN

# Only `downsample_<n>` stands for `downsample.<n>`: the other names (`b1_4`, `top_m_0`) are PyTorch's own.
KEY_RULE = functools.partial(torch_key, numbered=r"(downsample)_(\d+)")


def load_torch(path):
    """Read a 2D-FAN checkpoint strictly; return `(module, variables)`."""
    sd_raw = unwrap_state_dict(torch_load(path, "2D-FAN (2DFAN4-11f355bf06.pth.tar)"), path, "2D-FAN")
    stacks = 0
    while f"l{stacks}.weight" in sd_raw:
        stacks += 1
    if stacks == 0 or "conv1.weight" not in sd_raw:
        raise ConversionError(
            f"{path}: not a FAN checkpoint (no 'conv1.weight' / 'l0.weight'; first keys {list(sd_raw)[:5]})"
        )
    module = FAN(num_modules=stacks)
    return module, convert_by_template(module, to_numpy(sd_raw, str(path)), str(path), (1, 256, 256, 3), KEY_RULE)


save = file_save("fan", load_torch, "fan", lambda m: f"2D-FAN with {m.num_modules} stack(s)")


def main(argv=None):
    file_cli("fan", "Convert face-alignment's 2D-FAN landmark network to a jaxreenact checkpoint.",
             "face-alignment's 2DFAN4-11f355bf06.pth.tar (a FAN state dict)", save, argv)  # fmt: skip


if __name__ == "__main__":
    main()
