"""Stand-in (tests/authors_standin) for DECA's datasets/detectors.py: FAN needs face_alignment's weights, which no
test has, so it does not load (the recorder then uses its fixed-box stand-in)."""


class FAN:
    def __init__(self):
        raise RuntimeError("stand-in tree: no face_alignment weights")
