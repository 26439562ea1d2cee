"""Stand-in (tests/authors_standin) for the authors' libs/utilities/utils.py: the frames of a folder, sorted."""

import glob
import os


def get_image_files(path):
    return sorted(glob.glob(os.path.join(path, "*.png")) + glob.glob(os.path.join(path, "*.jpg")))
