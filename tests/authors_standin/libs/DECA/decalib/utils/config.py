"""Stand-in (tests/authors_standin) for DECA's decalib/utils/config.py: the settings the recorder reads and sets
(the coarse model's sizes, the file paths), as a namespace instead of a yacs CfgNode."""

from types import SimpleNamespace


def get_cfg_defaults():
    model = SimpleNamespace(n_shape=100, n_tex=50, n_exp=50, n_pose=6, n_cam=3, n_light=27, uv_size=256,
                            use_tex=True, param_list=["shape", "tex", "exp", "pose", "cam", "light"],
                            flame_model_path="", flame_lmk_embedding_path="")  # fmt: skip
    return SimpleNamespace(model=model, dataset=SimpleNamespace(image_size=224), pretrained_modelpath="")


cfg = get_cfg_defaults()
