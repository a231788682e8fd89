"""The few-anomalies study (``iadbench study fewshot``) on the real magnetic tile: PaDiM at 256 px, 3 seeds.

    python benchmarks/fewshot_tile.py run [--data ../shared/data/magnetic_tile] [--seeds 3] [--keep]
        Clone this repository's HEAD into a scratch folder, import the magnetic tile there (per-type defect map, as
        the README shows), set ``data.datasets=[magnetic_tile]``, ``data.products=[tile]``, ``data.image_size=256``,
        ``models=[padim]``, commit, ``dvc repro`` the baseline, commit its lock, then run ``iadbench study fewshot``
        (thresholds fitted with 0, 1, 2, 4, 8 and all anomalous validation images; only the thresholds stage
        onward reruns). Its ``reports/studies/fewshot.{json,md,png}`` are copied here as
        ``reports/bench/fewshot_tile.{json,md,png}``; then ``render``.
    python benchmarks/fewshot_tile.py render
        Rewrite docs/fewshot.md's block from reports/bench/fewshot_tile.md (no typing of numbers).

The clone runs this repository's code (its own ``src`` first on ``PYTHONPATH``), so the study's experiments are the
same DVC pipeline a user runs; nothing here is a separate implementation.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from readme_blocks import PROJECT, replace_block

DOC = PROJECT / "docs/fewshot.md"
DEFECT_MAP = "blowhole=structural,break=structural,crack=structural,fray=structural,uneven=surface"
OUT = PROJECT / "reports/bench"
IDENTITY = ["-c", "user.name=bench", "-c", "user.email=bench@iadbench.invalid"]


def _run(*cmd: str, cwd: Path, env: dict[str, str]) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, env=env, check=True)


def run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="iadbench-fewshot-tile-"))
    repo = work / "repo"
    env = dict(os.environ, HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=str(repo / "src"))  # fmt: skip
    started = time.perf_counter()
    _run("git", "clone", "-q", str(PROJECT), str(repo), cwd=work, env=env)
    _run("iadbench", "import", str(Path(args.data).resolve()), "--name", "magnetic_tile", "--background", "without",
         "--defect-map", DEFECT_MAP, cwd=repo, env=env)  # fmt: skip
    params = yaml.safe_load((repo / "params.yaml").read_text())
    text = (repo / "params.yaml").read_text()
    for old, new in ((f"datasets: {_flow(params['data']['datasets'])}", "datasets: [magnetic_tile]"),
                     (f"products: {_flow(params['data']['products'])}", "products: [tile]"),
                     (f"image_size: {params['data']['image_size']}", "image_size: 256"),
                     (f"\nmodels: {_flow(params['models'])}", "\nmodels: [padim]")):  # fmt: skip
        if old not in text:
            raise SystemExit(f"params.yaml: `{old.strip()}` not found; update benchmarks/fewshot_tile.py")
        text = text.replace(old, new, 1)  # keep the file's comments: only the four values change
    (repo / "params.yaml").write_text(text)
    _run("git", "add", "-A", cwd=repo, env=env)
    _run("git", *IDENTITY, "commit", "-qm", "magnetic tile, padim at 256 px", cwd=repo, env=env)
    _run("dvc", "repro", cwd=repo, env=env)
    _run("git", "add", "-A", cwd=repo, env=env)
    _run("git", *IDENTITY, "commit", "-qm", "baseline dvc.lock", cwd=repo, env=env)
    _run("iadbench", "study", "fewshot", "--seeds", str(args.seeds), cwd=repo, env=env)
    OUT.mkdir(parents=True, exist_ok=True)
    for ext in ("json", "md", "png"):
        shutil.copyfile(repo / f"reports/studies/fewshot.{ext}", OUT / f"fewshot_tile.{ext}")
    shutil.copyfile(repo / "reports/metrics.json", OUT / "fewshot_tile_baseline_metrics.json")
    kept = f"kept at {work}" if args.keep else "removed"
    print(f"study done in {time.perf_counter() - started:.0f} s; scratch {kept}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    render()


def _flow(items: list) -> str:
    return "[" + ", ".join(str(i) for i in items) + "]"


def render(_: argparse.Namespace | None = None) -> None:
    """docs/fewshot.md's ``fewshot-tile`` block: the study's tables from reports/bench/fewshot_tile.md."""
    path = OUT / "fewshot_tile.md"
    if not path.is_file():
        raise SystemExit(f"{path} not found: run `python benchmarks/fewshot_tile.py run` first")
    body = path.read_text().splitlines()
    body = body[2:] if body and body[0].startswith("# ") else body
    body = [f"#{line}" if line.startswith("##") else line for line in body]  # under the page's ## heading
    lines = ["From `reports/bench/fewshot_tile.md` (`python benchmarks/fewshot_tile.py run`: `iadbench study "
             "fewshot` in a clone with the magnetic tile imported, `models: [padim]`, `data.image_size: 256`).",
             "", *body, "", "![fewshot on the magnetic tile](../reports/bench/fewshot_tile.png)"]  # fmt: skip
    if not replace_block("fewshot-tile", lines, DOC):
        raise SystemExit(f"{DOC}: no <!-- fewshot-tile:start --> ... <!-- fewshot-tile:end --> block")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run")
    p.add_argument("--data", default=str(PROJECT.parent / "shared/data/magnetic_tile"))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--keep", action="store_true", help="keep the scratch clone (to inspect its experiments)")
    p.set_defaults(func=run)
    sub.add_parser("render").set_defaults(func=render)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
