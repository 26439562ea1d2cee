"""`python -m converters.all`: the golden checkpoints regenerated in the authors' layout (A and LPIPS under
pretrained_models/, DECA's files in a bare `data/` folder) are found, converted by each converter's own `save`
(the same arrays as the single converters), a rerun keeps them, and every missing file is listed with its links."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import goldens
from converters import all as convert_all
from converters import direction_matrix, lpips
from jaxreenact import weights
from jaxreenact.weights import registry

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def authors(tmp_path_factory):
    pytest.importorskip("torch", reason="the golden checkpoints are written by PyTorch")
    root = tmp_path_factory.mktemp("authors_repo")
    goldens.write_checkpoint("direction_matrix", root / "pretrained_models" / "A_matrix.pt")
    for f in ("alexnet-owt-7be5be79.pth", "alex.pth"):
        goldens.write_checkpoint("lpips_perceptual", root / "pretrained_models" / f, file=f)
    for f in ("deca_model.tar", "generic_model.pkl", "landmark_embedding.npy"):  # a DECA data/ folder at the top
        goldens.write_checkpoint("deca_coarse", root / "data" / f, file=f)
    return root


def _leaves(variables):
    return [np.asarray(x) for x in jax.tree.leaves(variables)]


def test_converts_what_it_finds_and_lists_what_is_missing(authors, tmp_path, capsys):
    out = tmp_path / "weights"
    result = convert_all.main([str(authors), "--out", str(out)])
    text = capsys.readouterr().out
    assert result["converted"] == ["deca", "A", "lpips"] and not result["failed"]
    assert sorted(result["missing"]) == ["arcface", "e4e", "fan", "generator", "inception", "sfd"]
    assert result["missing"]["generator"] == ["pretrained_models/stylegan-voxceleb.pt"]  # the authors' file name
    for name in result["missing"]:  # each missing file with where to get it (the registry's links)
        e = registry.entry(name)
        assert all(f in text for f in e.upstream) and e.links[0] in text
    assert "converted 3, kept 0, missing 6, failed 0 of 9 networks" in text
    # the same networks the single converters give, at the programs' default folder names
    for name, module, srcs in (
        ("A", direction_matrix, [authors / "pretrained_models" / "A_matrix.pt"]),
        ("lpips", lpips, [authors / "pretrained_models" / f for f in ("alexnet-owt-7be5be79.pth", "alex.pth")]),
    ):
        got = weights.load(out / registry.DEFAULT_DIRS[name])
        want = module.load_torch(*srcs)
        assert type(got[0]) is type(want[0])
        for a, b in zip(_leaves(got[1]), _leaves(want[1])):
            np.testing.assert_array_equal(a, b)
    m, _ = weights.load(out / "deca")
    assert type(m).__name__ == "DECA"
    # a rerun keeps what is converted; --overwrite converts again
    again = convert_all.main([str(authors), "--out", str(out), "--only", "A", "lpips"])
    assert again["kept"] == ["A", "lpips"] and not again["converted"]
    assert convert_all.main([str(authors), "--out", str(out), "--only", "A", "--overwrite"])["converted"] == ["A"]


def test_a_broken_file_fails_that_network_only(authors, tmp_path, capsys):
    bad = tmp_path / "bad"
    (bad / "pretrained_models").mkdir(parents=True)
    (bad / "pretrained_models" / "A_matrix.pt").write_bytes(b"not a checkpoint")
    for f in ("alexnet-owt-7be5be79.pth", "alex.pth"):
        (bad / "pretrained_models" / f).write_bytes((authors / "pretrained_models" / f).read_bytes())
    with pytest.raises(SystemExit) as e:
        convert_all.main([str(bad), "--out", str(tmp_path / "w"), "--only", "A", "lpips"])
    assert e.value.code == 1
    text = capsys.readouterr().out
    assert "A: FAILED:" in text and "A_matrix.pt" in text and "converted 1, kept 0, missing 0, failed 1" in text
    assert (tmp_path / "w" / "lpips").is_dir() and not (tmp_path / "w" / "A").exists()


def test_wrong_root_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        convert_all.main([str(tmp_path / "nowhere")])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "not a folder" in err and "\n" not in err


def test_candidates_walk_the_layout_tails(tmp_path):
    got = convert_all.candidates(tmp_path, "libs/DECA/data/deca_model.tar")
    assert got == [tmp_path / "libs/DECA/data/deca_model.tar", tmp_path / "DECA/data/deca_model.tar",
                   tmp_path / "data/deca_model.tar", tmp_path / "deca_model.tar"]  # fmt: skip
