"""converters.common's key-table driver: rows, hooks, dropped keys and computed leaves, and its strict accounting."""

import flax.linen as nn
import numpy as np
import pytest

from converters.common import CONV, LINEAR, SAME, Hook, convert_table, rule_table, template_of
from jaxreenact.common.errors import ConversionError
from jaxreenact.nn.torch_layers import BatchNorm, Conv2d, Linear


class Tiny(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = BatchNorm(name="bn_0")(Conv2d(4, 3, name="conv_1")(x))
        return Linear(2, name="fc")(x.mean(axis=(1, 2)))


@pytest.fixture(scope="module")
def template():
    return template_of(Tiny(), np.zeros((1, 5, 5, 3), np.float32))


def _sd():
    rng = np.random.default_rng(0)
    shapes = {
        "conv.1.weight": (4, 3, 3, 3),  # OIHW
        "conv.1.bias": (4,),
        "bn.0.weight": (4,),
        "bn.0.bias": (4,),
        "bn.0.running_mean": (4,),
        "bn.0.running_var": (4,),
        "fc.weight": (2, 4),  # [out, in]
        "fc.bias": (2,),
    }
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}


def test_rule_table_rows_and_values(template):
    table = rule_table(template)
    assert table["params/conv_1/weight"] == ("conv.1.weight", CONV)
    assert table["params/fc/weight"] == ("fc.weight", LINEAR)
    assert table["buffers/bn_0/running_var"] == ("bn.0.running_var", SAME)
    sd = _sd()
    v = convert_table(template, dict(sd, **{"bn.0.num_batches_tracked": np.array(3)}), "t", table)
    np.testing.assert_array_equal(v["params"]["conv_1"]["weight"], sd["conv.1.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(v["params"]["fc"]["weight"], sd["fc.weight"].T)
    np.testing.assert_array_equal(v["buffers"]["bn_0"]["running_mean"], sd["bn.0.running_mean"])
    assert v["params"]["conv_1"]["weight"].flags["C_CONTIGUOUS"]


def test_strict_accounting(template):
    sd, table = _sd(), rule_table(template)
    with pytest.raises(ConversionError, match="missing key 'fc.bias'"):
        convert_table(template, {k: a for k, a in sd.items() if k != "fc.bias"}, "t", table)
    with pytest.raises(ConversionError, match="unexpected key.*'fc.extra'"):
        convert_table(template, dict(sd, **{"fc.extra": np.zeros(1)}), "t", table)
    with pytest.raises(ConversionError, match=r"key 'fc.weight' has shape \(4, 2\), expected \(2, 4\)"):
        convert_table(template, dict(sd, **{"fc.weight": np.zeros((4, 2))}), "t", table)
    with pytest.raises(ConversionError, match="no value for parameter.*params/fc/bias"):
        convert_table(template, sd, "t", {k: r for k, r in table.items() if k != "params/fc/bias"})
    with pytest.raises(ConversionError, match="unknown parameter.*params/nope/weight"):
        convert_table(template, sd, "t", dict(table, **{"params/nope/weight": "fc.weight"}))


def test_hooks_dropped_and_computed(template):
    sd, table = _sd(), rule_table(template, skip={"params/fc/bias"})
    flip = Hook("reversed", lambda s: s, lambda a: a[::-1])
    table["params/conv_1/bias"] = ("conv.1.bias", flip)
    const = np.arange(4, dtype=np.float32)
    sd |= {"blur.kernel": const, "head.weight": np.zeros((7, 3), np.float32)}
    del sd["fc.bias"]  # the computed leaf's key is not read: were it in the file, it would be an unexpected key
    dropped = {"blur.kernel": const, "head.weight": (7, 3)}
    computed = {"params/fc/bias": np.full(2, 5.0, np.float32)}
    v = convert_table(template, sd, "t", table, computed=computed, dropped=dropped)
    np.testing.assert_array_equal(v["params"]["conv_1"]["bias"], sd["conv.1.bias"][::-1])
    np.testing.assert_array_equal(v["params"]["fc"]["bias"], [5.0, 5.0])
    with pytest.raises(ConversionError, match="key 'blur.kernel' holds"):
        convert_table(template, dict(sd, **{"blur.kernel": const + 1}), "t", table, computed=computed, dropped=dropped)
    with pytest.raises(ConversionError, match="key 'head.weight' has shape"):
        bad = dict(sd, **{"head.weight": np.zeros((7, 4), np.float32)})
        convert_table(template, bad, "t", table, computed=computed, dropped=dropped)
    with pytest.raises(ConversionError, match="parameter params/fc/bias has shape"):
        convert_table(template, sd, "t", table, computed={"params/fc/bias": np.zeros(3)}, dropped=dropped)
