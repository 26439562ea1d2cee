"""Stage 3 (paper Sec. 3.3): fine-tune A on pairs of frames of the same video.

    python -m jaxreenact.train --config=configs/paired.py --workdir=runs/paired \\
        --config.data.tfds_dir=data/vox_tfds --config.train.init_from=runs/mixed
    python -m jaxreenact.train --config=configs/paired.py:tiny --workdir=runs/tiny-paired   # CPU, made-up data

Decisions about the authors' quirks (METHOD.md Appendix A):
* LPIPS and the pixel L1 compare images converted to [0, 255] (`torch_range_1_to_255`), as upstream; with the
  weights 10 and 1 this is what the released model was trained with.
* Full Δp (no single-attribute half); shape GT = the target's own DECA shape, pose and expression.
* `train.steps` counts steps (150K, the paper's fine-tuning length); each epoch takes 2 source frames per video
  (`data.max_pairs`).
* Batch 12 as the paper trains every stage (the authors' README example passes `--batch_size 4`:
  `--config.train.batch_size=4` for that).
* `loss.w_reg` (the authors' `lambda_w_reg`, 0 by default as theirs) adds L1(trunc(w_s + A·Δp), target e4e W+).
* Validation: fixed pairs of the `data.val_split` split ("test"; built with `--split test`), as the authors'
  `CustomDataset_paired_validation` on their test set.
"""

from configs import common


def get_config(arg=None):
    c = common.get_config()
    c.mode = "paired"
    c.train.steps = 150_000
    c.loss.disentanglement_50 = False
    return common.variant(c, arg)
