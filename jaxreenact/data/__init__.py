"""File and dataset I/O: images and folders (`images.py`), videos (`video.py`), the preprocess program's outputs
(`preprocessing.py`) and the training datasets."""
