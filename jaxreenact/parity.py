"""Check the port against golden folders of upstream PyTorch outputs (`../shared/golden`, `tests/golden`).

    python -m jaxreenact.parity ../shared/golden/stylegan2_vox256 ../shared/golden/reenact_frames
    python -m jaxreenact.parity FOLDER --weights DIR     # the upstream checkpoint files in DIR, by the spec's names

Without --weights, each folder's random-weight checkpoints are rebuilt from its spec with the harness's
`regen.py` (beside the golden folders) in a temporary folder, then converted with `converters.<name>.load_torch`
(torch needed). Prints one row per expected array (name, measure, value, tolerance, PASS/FAIL) and a summary line;
exit status 1 when any array misses its tolerance (or a folder's kind cannot be checked yet), 2 for a folder that
cannot be read.
"""

from __future__ import annotations

import argparse

from jaxreenact.common.errors import cli_main
from jaxreenact.evaluation import parity


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m jaxreenact.parity", description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", metavar="FOLDER", help="golden folder(s): spec.json, inputs.npz, expected.npz")
    p.add_argument("--weights", metavar="DIR", help="use the upstream checkpoint files in DIR instead of regenerating")
    p.add_argument("--tmp", metavar="DIR", help="where to regenerate checkpoints (default: the system temp folder)")
    return p.parse_args(argv)


@cli_main
def main(argv=None):
    a = parse_args(argv)
    results = parity.check_folders(a.folders, weights_dir=a.weights, tmp_root=a.tmp, echo=print)
    rows = [r for res in results for r in res.rows]
    bad = [f"{res.folder.name}/{r.name}" for res in results for r in res.rows if not r.ok]
    unchecked = [res.folder.name for res in results if res.not_checked]
    line = f"parity: {len(rows) - len(bad)}/{len(rows)} arrays pass in {len(results)} folder(s)"
    if bad:
        line += f"; FAIL: {', '.join(bad[:8])}{' ...' if len(bad) > 8 else ''}"
    if unchecked:
        line += f"; not checked: {', '.join(unchecked)}"
    print(line)
    if bad or unchecked:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
