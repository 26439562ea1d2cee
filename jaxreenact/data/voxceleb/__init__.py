"""VoxCeleb-style datasets: the tree on disk (`tree`), its TFDS builder (`builder`) and the readers (`reader`).

The generic input pipeline (host batches, prefetch, global arrays) is `jaxreenact.data.pipeline`.
"""

from jaxreenact.data.voxceleb.builder import BuildReport, build_frames_dataset, dataset_dir
from jaxreenact.data.voxceleb.reader import VoxCelebFrames, host_batches, num_batches
from jaxreenact.data.voxceleb.tree import (
    BUILD_COMMAND,
    DATASET_NAME,
    FRAMES_DIR,
    IMAGE_EXTENSIONS,
    INDEX_FILE,
    LATENT_SHAPE,
    LATENTS_DIR,
    REPORT_FILE,
    VERSION,
    FrameRecord,
    Skip,
    TreeScan,
    VideoRecord,
    files_by_stem,
    find_video_dirs,
    load_frame,
    load_image,
    load_latent,
    scan_tree,
)

__all__ = [
    "BUILD_COMMAND", "DATASET_NAME", "FRAMES_DIR", "IMAGE_EXTENSIONS", "INDEX_FILE", "LATENTS_DIR", "LATENT_SHAPE",
    "REPORT_FILE", "VERSION", "BuildReport", "FrameRecord", "Skip", "TreeScan", "VideoRecord", "VoxCelebFrames",
    "build_frames_dataset", "dataset_dir", "files_by_stem", "find_video_dirs", "host_batches", "load_frame",
    "load_image", "load_latent", "num_batches", "scan_tree",
]  # fmt: skip
