"""Relabel the curve rows whose spec left settings to the model's defaults (run once, 2026-12-02).

    python benchmarks/results/overoptimisation/relabel.py benchmarks/results/overoptimisation

When version 2 of the defaults rule changed the embedded model's defaults,
``nulltta:n_max=N``, ``nulltta:n_max=N:kl_weight=0.002`` and
``nulltta-manifold:n_max=N`` would have meant other settings. Each old label
became a spec that pins what it resolved to, checked against every row's own
record of its resolved settings; the rows, images and run.json entries moved
with it. The release's preset now names its inner-step order, which it ran in.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from nulltta.bench.methods import make_method
from nulltta.bench.runner import _label_dir

PIN = ":kl_weight={kl}:learning_rate=0.01:inner_steps_order=ramp_up"


def main(folder: Path) -> None:
    """Rewrite rows.jsonl and run.json and rename the image folders in place."""
    mapping = {}
    for n in (5, 12, 25, 55):
        mapping[f"nulltta:n_max={n}"] = f"nulltta:n_max={n}" + PIN.format(kl=0.02)
        mapping[f"nulltta:n_max={n}:kl_weight=0.002"] = f"nulltta:n_max={n}" + PIN.format(kl=0.002)
        mapping[f"nulltta-manifold:n_max={n}"] = f"nulltta-manifold:n_max={n}" + PIN.format(kl=0.02)
    lines = (folder / "rows.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    run = json.loads((folder / "run.json").read_text())
    for old, new in mapping.items():
        mine = [r for r in rows if r["method"] == old]
        assert len(mine) == 16, (old, len(mine))
        want = make_method(new)
        for row in mine:
            resolved = row["info"]["resolved"]
            assert resolved["kl_weight"] == want.kl_weight, (old, resolved)
            assert resolved["learning_rate"] == want.learning_rate, (old, resolved)
            assert resolved.get("inner_steps_order", "ramp_up") == "ramp_up"
            row["method"] = new
            row["image"] = row["image"].replace(f"images/{_label_dir(old)}/",
                                                f"images/{_label_dir(new)}/")  # fmt: skip
        (folder / "images" / _label_dir(old)).rename(folder / "images" / _label_dir(new))
        stored = run["methods"].pop(old)
        settings = {"class": type(want).__name__, "follows": want.follows, **want.settings()}
        changed = {k for k in settings if stored.get(k) != settings[k]}
        assert changed <= {"kl_weight", "learning_rate", "inner_steps_order"}, changed
        run["methods"][new] = settings
    for label, settings in run["methods"].items():
        if label.startswith("nulltta-release:"):
            settings["inner_steps_order"] = "ramp_up"
    (folder / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "run.json").write_text(json.dumps(run, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
