"""What the real-data stages (mixed, paired) share: opening the built dataset and the step -> batch stream.

`config.train.steps` counts optimizer steps in every mode (upstream counts epochs for the real-data modes); the
data stream runs epoch after epoch, each epoch a pure function of (seed, epoch), so a resumed run reads the same
data.
"""

from __future__ import annotations

import pathlib
import tempfile

from jaxreenact.common.errors import UserError
from jaxreenact.data import fake, pipeline
from jaxreenact.data.voxceleb import VoxCelebFrames


def open_dataset(config):
    """The built VoxCeleb-style dataset of `config.data` (a made-up one for `:tiny` configs)."""
    root = config.data.tfds_dir
    if config.tiny and not root:
        folder = config.data.fake_dir or pathlib.Path(tempfile.gettempdir()) / "jaxreenact_fake_voxceleb"
        root = fake.make_fake_dataset(folder, image_size=256)
    if not root:
        raise UserError(
            "config.data.tfds_dir is empty: build your dataset with "
            "`python -m jaxreenact.data.build --root DATASET_ROOT --out TFDS_DIR` and pass --config.data.tfds_dir=TFDS_DIR"
        )
    return VoxCelebFrames(root, config.data.split)


def stream(make_iter, keys, mesh):
    """step -> this step's global batch; the iterator is (re)started at the first step asked for."""
    state = {"next": None, "it": None}

    def batches(step: int):
        if state["it"] is None or state["next"] != step:
            state["it"] = pipeline.prefetch(make_iter(step))
        b = next(state["it"])
        state["next"] = step + 1
        return pipeline.to_global({k: b[k] for k in keys}, mesh)

    return batches
