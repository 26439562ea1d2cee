"""The method's constants, each in one place (configs import this module: it imports nothing)."""

IMAGE_SIZE = 256  # the method's image side: G's output is brought to 256² (METHOD.md 1.4)
TRUNCATION = 0.7  # ψ after the A-shift, in training, reenactment and editing (METHOD.md 1.4)
STYLE_DIM = 512
NUM_LAYERS_SHIFT = 8  # A's shift is added to W+ rows 0-7 (METHOD.md 2.1)
LEARNED_DIRECTIONS = 15  # VoxCeleb layout: yaw, pitch, roll, jaw, exp0..exp10 (METHOD.md 2.3)
SHIFT_SCALE = 6.0  # Δp in shift units spans ±6 (METHOD.md 2.4)
TUNE_STEPS = 200  # generator tuning steps of the authors' inference (METHOD.md 6.2)
# How training finds DECA's 224 crop box (`config.model.deca_box`); `python -m jaxreenact.stats` follows it.
DECA_BOX = "landmarks"

# The 68-landmark box of a face in the authors' 256x256 framing (METHOD.md 7.1: the crop side is twice the landmark
# extent and the face centre sits size // 6 below the crop centre, integer division as theirs): side 128 px,
# centre (128, 128 + 128 // 6).
DECA_BOX_SIZE = 128.0
DECA_BOX_CENTER = (128.0, 149.0)
