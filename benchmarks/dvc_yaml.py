"""What DVC spends reading and rewriting this project's ``dvc.lock``, with and without ruamel.yaml's C loader.

    python benchmarks/dvc_yaml.py [--repeat 5] [--readme]

DVC reads ``dvc.yaml``/``dvc.lock`` with ``ruamel.yaml`` (``YAML(typ="safe")``) on every command and, after each
stage of a ``dvc repro``, parses the lock again in round-trip mode and dumps it whole
(``dvc.utils.serialize.modify_yaml``). ruamel.yaml 0.19 made its C loader an optional package
(``ruamel.yaml.clib``, which pyproject.toml now names); without it the safe load is pure Python. The round trip is
pure Python either way, so its cost grows with the lock: the committed full lock against the lock of the tests'
tiny configuration (its stages only; the stages of ``tests/conftest.py``'s TINY).

Baseline: the pure-Python safe load (``pure=True``) of the same text in the same run. Prints the median seconds
of each and the ratios, writes ``reports/bench/dvc_yaml.json``; ``--readme`` renders the README's ``dvc-yaml`` block.
"""

from __future__ import annotations

import argparse
import statistics
import time
from io import StringIO
from pathlib import Path

from readme_blocks import PROJECT, replace_block, save_result
from ruamel.yaml import YAML


def _median(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _round_trip(text: str) -> None:
    """What DVC's ``modify_yaml`` does to ``dvc.lock`` after each stage: parse for update, dump whole."""
    yaml = YAML()
    data = yaml.load(text)
    yaml.dump(data, StringIO())


def _tiny(text: str) -> str:
    """The lock with only the stages the tiny e2e configuration runs (one product, padim and ae)."""
    yaml = YAML()
    data = yaml.load(text)
    cells = {"train", "predict", "thresholds", "evaluate"}
    for name in list(data["stages"]):
        base, _, cell = name.partition("@")
        if base in cells and cell not in ("padim-nut", "ae-nut"):
            del data["stages"][name]
    out = StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--readme", action="store_true", help="render the README's dvc-yaml block")
    args = parser.parse_args()
    full = (PROJECT / "dvc.lock").read_text()
    texts = {"full": full, "tiny": _tiny(full)}
    try:
        YAML(typ="safe", pure=False).load("a: 1")
        from ruamel.yaml import CParser  # noqa: F401  (present only with ruamel.yaml.clib)
    except ImportError as err:
        raise SystemExit(f"ruamel.yaml.clib is not installed ({err}): `make env` installs it") from err
    rows = {}
    for name, text in texts.items():
        pure = _median(lambda t=text: YAML(typ="safe", pure=True).load(t), args.repeat)
        clib = _median(lambda t=text: YAML(typ="safe").load(t), args.repeat)
        rt = _median(lambda t=text: _round_trip(t), args.repeat)
        rows[name] = {"lines": text.count("\n"), "safe_pure_s": round(pure, 4), "safe_c_s": round(clib, 4),
                      "round_trip_s": round(rt, 4)}  # fmt: skip
    header = "| lock | lines | safe load, pure Python (s) | safe load, C (s) | C / pure | round trip (s) |"
    lines = [header, "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['lines']} | {r['safe_pure_s']:.3f} | {r['safe_c_s']:.3f} | "
                     f"{r['safe_c_s'] / r['safe_pure_s']:.2f} | {r['round_trip_s']:.3f} |")  # fmt: skip
    print("\n".join(lines))
    save_result("dvc_yaml", {"repeat": args.repeat, "locks": rows}, Path.cwd())
    if args.readme:
        intro = (f"From `python benchmarks/dvc_yaml.py --readme` (`reports/bench/dvc_yaml.json`, median of "
                 f"{args.repeat}): what DVC spends reading this project's `dvc.lock` (every command) and "
                 "round-tripping it (after every stage of a `dvc repro`), the committed lock (`full`) and the lock of "
                 "the tests' tiny configuration (`tiny`).")  # fmt: skip
        replace_block("dvc-yaml", [intro, "", *lines])


if __name__ == "__main__":
    main()
