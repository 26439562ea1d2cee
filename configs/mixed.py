"""Stage 2 (paper Sec. 3.2): half real frames (e4e latents), half synthetic sources; synthetic targets.

    python -m jaxreenact.data.build --root DATASET_ROOT --out data/vox_tfds      # once
    python -m jaxreenact.train --config=configs/mixed.py --workdir=runs/mixed \\
        --config.data.tfds_dir=data/vox_tfds --config.train.init_from=runs/synthetic
    python -m jaxreenact.train --config=configs/mixed.py:tiny --workdir=runs/tiny-mixed   # CPU, made-up data

Decisions about the authors' quirks (METHOD.md Appendix A):
* `train.steps` counts steps (upstream `max_iter` means epochs here); the data stream is epoch-ordered.
* As upstream, the real half comes first in the batch, so with the 50% scheme the real sources get full Δp and
  the synthetic ones single-attribute shifts.
* Real latents are the e4e outputs without latent_avg, truncated by ψ=0.7 after the shift, as upstream.
* 20K steps of batch 12, as the paper.
* Validation as the authors' `CustomDataset_testset_real`: sources are e4e latents of frames of the `data.val_split`
  split ("test"; build it with `python -m jaxreenact.data.build --root TEST_ROOT --out TFDS_DIR --split test`),
  rendered G(trunc(w)) (DECA and CSIM read that image, as upstream); targets are fixed synthetic faces.
"""

from configs import common


def get_config(arg=None):
    c = common.get_config()
    c.mode = "real_synthetic"
    return common.variant(c, arg)
