"""Defaults shared by every training stage (METHOD.md 4.1-4.4: the authors' values unless noted).

Not run directly: `configs/synthetic.py`, `configs/mixed.py` and `configs/paired.py` build on it.
Weight paths point at *converted* checkpoints (directories written by `python -m converters.<name>`).
"""

import ml_collections

from jaxreenact.common import constants as K
from jaxreenact.weights.registry import DEFAULT_DIRS


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.mode = "synthetic"  # synthetic | real | real_synthetic | paired (the authors' training_method)
    c.seed = 0
    # Pose vector layout and shift units: voxceleb (yaw, pitch, roll, jaw, exp0..10) or ffhq (METHOD.md 2.3).
    c.dataset_type = "voxceleb"
    c.ranges_file = ""  # "" = the authors' ranges file for dataset_type, shipped in jaxreenact/resources
    c.tiny = False  # True: small random-weight networks of the same kinds (CI, laptops); no weight files

    c.weights = ml_collections.ConfigDict()
    # Converted checkpoints (jaxreenact.weights.registry lists each with its converter command).
    for name in ("generator", "deca", "arcface", "lpips", "e4e", "sfd", "fan"):
        c.weights[name] = f"weights/{DEFAULT_DIRS[name]}"

    c.model = ml_collections.ConfigDict()
    c.model.truncation = K.TRUNCATION  # applied after the shift, to every latent (METHOD.md 1.4)
    c.model.num_layers_shift = K.NUM_LAYERS_SHIFT  # W+ rows 0-7
    c.model.learned_directions = K.LEARNED_DIRECTIONS
    c.model.shift_scale = K.SHIFT_SCALE
    # How DECA's 224 crop box is found on 256x256 faces. "landmarks" (the authors'): face_alignment's S3FD + 2D-FAN
    # on every image DECA reads (3 per sample), reproduced under jit (jaxreenact.face.fa_landmarks); needs
    # weights.sfd and weights.fan. "fixed": the box of a centred face of the authors' framing, several times
    # cheaper (the :tiny variants use it). See README for the trade-off.
    c.model.deca_box = K.DECA_BOX
    c.model.deca_box_size = K.DECA_BOX_SIZE  # "fixed": side (px) of the 68-landmark box
    c.model.deca_box_center = K.DECA_BOX_CENTER  # "fixed": its (x, y) centre in the 256x256 frame

    c.loss = ml_collections.ConfigDict()
    c.loss.identity = 10.0
    c.loss.perceptual = 10.0
    c.loss.shape = 1.0  # <= 0 turns the eye and mouth losses off too, as upstream (they share its branch)
    c.loss.eye = 1.0
    c.loss.mouth = 1.0
    c.loss.pixel = 1.0  # paired stage only
    c.loss.w_reg = 0.0  # paired stage only: L1(trunc(w_s + A·Δp), target e4e W+), the authors' lambda_w_reg
    c.loss.disentanglement_50 = True  # half of each batch moves one attribute only (METHOD.md 4.3)

    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 12  # global batch, sharded over the `data` mesh axis (the paper: 12 in every stage)
    # > 0: the global batch is this × the device count instead (fills a pod; keep lr, see docs/pods.md); 0: off.
    c.train.per_device_batch_size = 0
    c.train.steps = 20_000  # the paper's 20K (stages 1, 2); configs/paired.py: 150K
    c.train.lr = 1e-4
    c.train.weight_decay = 5e-4
    c.train.optimizer = "adam"  # adam: coupled L2 as torch.optim.Adam(weight_decay=...); adamw: decoupled
    c.train.log_every = 10
    c.train.checkpoint_every = 1000
    c.train.eval_every = 1000
    c.train.max_to_keep = 3
    c.train.init_from = ""  # a converted A checkpoint or a previous stage's workdir to start from

    c.data = ml_collections.ConfigDict()
    c.data.tfds_dir = ""  # python -m jaxreenact.data.build --root DATASET_ROOT --out TFDS_DIR (real-data stages)
    c.data.split = "train"
    # Validation of the real-data stages reads this split of the same TFDS folder (the authors validate on their
    # test set): `python -m jaxreenact.data.build --root TEST_ROOT --out TFDS_DIR --split test`.
    c.data.val_split = "test"
    c.data.max_pairs = 2  # paired stage: source frames per video per epoch (METHOD.md 5)
    c.data.fake_dir = ""  # tiny configs: where the made-up tree is built ("" = the system's temp folder)

    c.eval = ml_collections.ConfigDict()
    c.eval.num_pairs = 48  # fixed seeded validation pairs, all of them scored (the authors score sample [0])
    c.eval.batch_size = 12
    c.eval.grid_pairs = 4
    c.eval.seed = 1234

    c.mesh = ml_collections.ConfigDict()
    c.mesh.data = -1  # -1: all devices on the data axis
    c.mesh.device_order = ""  # "": JAX's order; "0,2,1,3": devices in this order (tests interleave processes)
    c.dtype = "float32"  # compute dtype of the frozen networks: float32 | bfloat16
    # Matmul precision of the step's networks: highest | high | default (jaxreenact.common.precision). "default" is
    # one bfloat16 pass on a TPU and TF32 on an A100/H100; the DECA box and crop run at highest whatever this says.
    # docs/precision.md has the measured cost of each choice.
    c.precision = "default"
    return c


def variant(c, arg):
    """Apply the `:arg` variant of a stage config (only `tiny` exists) and lock it."""
    if arg == "tiny":
        tiny(c)
    elif arg:
        raise ValueError(f"unknown variant {arg!r} (use ':tiny' or nothing)")
    return c.lock()


def tiny(c):
    """Shrink a config to small random-weight networks that train on a 2-core CPU in minutes."""
    c.tiny = True
    c.model.deca_box = "fixed"  # the real-size S3FD would dominate a CPU smoke run
    c.train.batch_size = 4
    c.train.steps = 50
    c.train.log_every = 5
    c.train.checkpoint_every = 25
    c.train.eval_every = 25
    c.eval.num_pairs = 4
    c.eval.batch_size = 4
    c.eval.grid_pairs = 2
    return c
