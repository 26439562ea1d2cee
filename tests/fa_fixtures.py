"""Random face_alignment networks for the tests that compare with the package (torch side).

`face_s3fd`: an S3FD whose trunk is He-initialised (its features depend on the image) and whose only scoring head
is fc7 (the others score nothing), so a test can set fc7's face bias to make some images' best anchor score above
the package's threshold. `random_fan`: a FAN with random BatchNorm statistics (a fresh FAN's are trivial)."""

from __future__ import annotations

HEADS = ("conv3_3_norm", "conv4_3_norm", "conv5_3_norm", "fc7", "conv6_2", "conv7_2")


def face_s3fd(loc_scale: float, conf_scale: float, seed: int = 0):
    """(net, face_logit): `face_logit(x)` is fc7's face-minus-background logit map per image of the BGR-mean
    input x [b, 3, H, W], before any bias is set (set `net.fc7_mbox_conf.bias[1]` from it)."""
    import torch
    from face_alignment.detection.sfd.net_s3fd import s3fd

    torch.manual_seed(seed)
    net = s3fd().eval()
    with torch.no_grad():
        for name, m in net.named_modules():
            if isinstance(m, torch.nn.Conv2d) and "mbox" not in name:
                m.weight.normal_(0.0, (2.0 / m.weight[0].numel()) ** 0.5)
                m.bias.zero_()
        for h in HEADS:
            conf, loc = getattr(net, f"{h}_mbox_conf"), getattr(net, f"{h}_mbox_loc")
            loc.weight.mul_(loc_scale)  # boxes stay near their anchors
            loc.bias.zero_()
            conf.bias.zero_()
            if h == "fc7":
                conf.weight.mul_(conf_scale)
            else:
                conf.weight.zero_()
                conf.bias[-1] = -30.0

    def face_logit(x):
        with torch.no_grad():
            cls = net(x)[2 * HEADS.index("fc7")]
            return (cls[:, 1] - cls[:, 0]).flatten(1)

    return net, face_logit


def random_fan(num_modules: int, seed: int = 1, bn_seed: int = 2):
    import torch
    from face_alignment.models.fan import FAN

    torch.manual_seed(seed)
    net = FAN(num_modules).eval()
    g = torch.Generator().manual_seed(bn_seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.2, 0.2, generator=g)
    return net
