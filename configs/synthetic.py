"""Stage 1 (paper Sec. 3.1): learn A from synthetic pairs G(z_s), G(z_t).

python -m jaxreenact.train --config=configs/synthetic.py --workdir=runs/synthetic
python -m jaxreenact.train --config=configs/synthetic.py:tiny --workdir=runs/tiny   # CPU, random weights
"""

from configs import common


def get_config(arg=None):
    c = common.get_config()
    c.mode = "synthetic"
    return common.variant(c, arg)
