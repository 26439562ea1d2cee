"""The authors' `real` training mode (`run_trainer.py --training_method real`; METHOD.md 4.5 item 2): every source
is a real frame with its e4e latent, every target a synthetic face. Not one of the paper's three stages.

    python -m jaxreenact.train --config=configs/real.py --workdir=runs/real \\
        --config.data.tfds_dir=data/vox_tfds --config.train.init_from=runs/synthetic
    python -m jaxreenact.train --config=configs/real.py:tiny --workdir=runs/tiny-real   # CPU, made-up data

As `configs/mixed.py` (same quirks and validation) with B real sources instead of B/2 real + B/2 synthetic; with the
50% scheme the first half of the batch gets full Δp and the second half single-attribute shifts, as upstream.
"""

from configs import common


def get_config(arg=None):
    c = common.get_config()
    c.mode = "real"
    return common.variant(c, arg)
