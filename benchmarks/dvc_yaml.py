"""What DVC spends reading and rewriting this project's ``dvc.lock``, with and without ruamel.yaml's C loader.

    python benchmarks/dvc_yaml.py [--repeat 5]

DVC reads ``dvc.yaml``/``dvc.lock`` with ``ruamel.yaml`` (``YAML(typ="safe")``) on every command and, after each
stage of a ``dvc repro``, parses the lock again in round-trip mode and dumps it whole
(``dvc.utils.serialize.modify_yaml``). ruamel.yaml 0.19 made its C loader an optional package
(``ruamel.yaml.clib``, which pyproject.toml now names); without it the safe load is pure Python. The round trip is
pure Python either way, so its cost grows with the lock: the committed full lock against the lock of the tests'
tiny configuration (its stages only; the stages of ``tests/conftest.py``'s TINY).

Baseline: the pure-Python safe load (``pure=True``) of the same text in the same run. Prints the median seconds
of each and the ratios; nothing is written.
"""

from __future__ import annotations

import argparse
import statistics
import time
from io import StringIO

from readme_blocks import PROJECT
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
    args = parser.parse_args()
    full = (PROJECT / "dvc.lock").read_text()
    texts = {"full": full, "tiny": _tiny(full)}
    try:
        YAML(typ="safe", pure=False).load("a: 1")
        from ruamel.yaml import CParser  # noqa: F401  (present only with ruamel.yaml.clib)
    except ImportError as err:
        raise SystemExit(f"ruamel.yaml.clib is not installed ({err}): `make env` installs it") from err
    print(f"{'lock':<5} {'lines':>6} {'safe, pure (s)':>15} {'safe, C (s)':>12} {'C / pure':>9} "
          f"{'round trip (s)':>15} {'rt / pure':>10}")  # fmt: skip
    for name, text in texts.items():
        pure = _median(lambda t=text: YAML(typ="safe", pure=True).load(t), args.repeat)
        clib = _median(lambda t=text: YAML(typ="safe").load(t), args.repeat)
        rt = _median(lambda t=text: _round_trip(t), args.repeat)
        lines = text.count("\n")
        print(f"{name:<5} {lines:>6} {pure:>15.3f} {clib:>12.3f} {clib / pure:>9.2f} {rt:>15.3f} {rt / pure:>10.2f}")


if __name__ == "__main__":
    main()
