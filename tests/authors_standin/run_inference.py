"""Stand-in (tests/authors_standin) for the authors' run_inference.py `Inference`, written from METHOD.md 2.4 and
5: the source is inverted with e4e, DECA reads it and each driving frame, Δp (driving − source, in shift units)
goes through A, and the source code with the shift is rendered. Only the parts the recorder runs."""

import torch
from libs.DECA.estimate_DECA import DECA_model  # noqa: F401  (imported as theirs is)
from libs.utilities.generic import calculate_shapemodel, generate_image, initialize_directions  # noqa: F401
from libs.utilities.image_utils import image_to_tensor
from libs.utilities.utils import get_image_files
from libs.utilities.utils_inference import invert_image, preprocess_image


class Inference:
    def load_models(self):
        raise RuntimeError("stand-in tree: the recorder loads the models")

    def load_source_data(self):
        cropped = preprocess_image(self.source_path, self.landmarks_est)
        source_image = image_to_tensor(cropped).unsqueeze(0)
        _, source_code = invert_image(source_image, self.encoder, self.generator, self.truncation, self.trunc)
        return source_image, source_code, self.generator

    def load_target_data(self):
        return get_image_files(self.target_path)

    def run_reenactment(self):
        self.load_models()
        source_img, source_code, g = self.load_source_data()
        params_source, angles_source = calculate_shapemodel(self.shape_model, source_img)
        for target in self.load_target_data():
            with torch.no_grad():
                target_img = image_to_tensor(preprocess_image(target, self.landmarks_est)).unsqueeze(0)
                params_target, angles_target = calculate_shapemodel(self.shape_model, target_img)
                shift = self.A_matrix(self.make_shift(angles_source, angles_target, params_source, params_target))
                generate_image(g, source_code, self.truncation, self.trunc, self.w_plus, self.num_layers_shift,
                               shift_code=shift, input_is_latent=True, return_latents=True)  # fmt: skip

    def make_shift(self, angles_source, angles_target, params_source, params_target):
        out = torch.zeros(self.learned_directions)
        a_s, a_t = angles_source[0].double().numpy(), angles_target[0].double().numpy()
        for i in range(3):  # yaw, pitch, roll: degrees to shift units
            out[i] = float(
                a_t[i] * self.shift_scale / self.angle_scales[i] - a_s[i] * self.shift_scale / self.angle_scales[i]
            )
        jaw_s, jaw_t = float(params_source["pose"][0, 3]), float(params_target["pose"][0, 3])
        out[3] = (self.a_jaw * jaw_t + self.b_jaw) - (self.a_jaw * jaw_s + self.b_jaw)
        for d in self.directions_exp:
            k = d["exp_component"]
            e_s, e_t = float(params_source["alpha_exp"][0, k]), float(params_target["alpha_exp"][0, k])
            out[d["A_direction"]] = (d["a"] * e_t + d["b"]) - (d["a"] * e_s + d["b"])
        return out.unsqueeze(0)
