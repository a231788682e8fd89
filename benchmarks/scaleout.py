"""The Ray executor's cost against DVC's local queue, on the same tiny study in the same run.

    python benchmarks/scaleout.py run [--conditions 0,all]
        Clone this repository's HEAD into a scratch folder with a tiny configuration (AE, nut, 64 px, 1 epoch), then
        run ``iadbench study fewshot --conditions ... --seeds 1`` three times, each from a fresh clone with its own
        bare git remote and DVC remote (so that no run finds another's experiments):
          - ``local``: DVC's queue, one worker (the baseline);
          - ``ray-1``: ``--executor ray`` on a Ray cluster of one 1-CPU node;
          - ``ray-2``: the same on two 1-CPU nodes.
        Writes ``reports/bench/scaleout.json`` (wall times, their ratios to ``local``, and each Ray experiment's
        seconds split into clone, run and push), then ``render``.
    python benchmarks/scaleout.py render
        Rewrite the README's ``scaleout`` block from reports/bench/scaleout.json (no typing of numbers).

All three runs are on this machine (2 cores): the ratios say what the Ray path costs per experiment (clone, push,
Ray's scheduling) and what a second worker buys when both share the same cores, not what a real cluster gives.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from readme_blocks import PROJECT, replace_block

OUT = PROJECT / "reports/bench/scaleout.json"
TINY = {"models": "[ae]", "products": "[nut]", "image_size": "64"}


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    print("$", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True, text=True)


def _setup(work: Path, name: str, env: dict[str, str]) -> Path:
    """A clone of HEAD with the tiny configuration, its own bare git remote and DVC remote, pushed."""
    repo = work / name / "repo"
    _run(["git", "clone", "-q", str(PROJECT), str(repo)], work, env)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["models"] = ["ae"]
    params["data"].update(datasets=["synthetic"], products=["nut"], image_size=64)
    params["train"]["epochs"] = 1
    params["export"]["cells"] = []
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["git", "init", "-q", "--bare", str(work / name / "remote.git")], work, env)
    _run(["git", "remote", "set-url", "origin", str(work / name / "remote.git")], repo, env)
    _run([sys.executable, "-m", "dvc", "remote", "add", "-f", "-d", "bench", str(work / name / "dvcstore")], repo, env)
    _run(["git", "-c", "user.name=bench", "-c", "user.email=b@b", "commit", "-qam", "tiny"], repo, env)
    _run(["git", "push", "-q", "origin", "HEAD:refs/heads/main"], repo, env)
    return repo


def _steps(match: re.Match) -> dict[str, object]:
    """One ``done NAME on node N in S s (clone a s, run b s, push c s)`` line of the study's output."""
    parts = {k: float(v) for k, v in re.findall(r"(\w+) ([\d.]+) s", match[3])}
    return {"experiment": match[1], "seconds": float(match[2]), **parts}


def run(args: argparse.Namespace) -> None:
    from ray.cluster_utils import Cluster

    work = Path(tempfile.mkdtemp(prefix="iadbench-scaleout-"))
    env = dict(os.environ, HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")  # fmt: skip
    study = ["iadbench", "study", "fewshot", "--conditions", args.conditions, "--seeds", "1"]
    results: dict[str, dict] = {}
    for name, nodes in (("local", 0), ("ray-1", 1), ("ray-2", 2)):
        repo = _setup(work, name, env)
        extra: list[str] = []
        cluster = None
        if nodes:
            cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
            for _ in range(nodes - 1):
                cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            extra = ["--executor", "ray", "--address", cluster.address]
        start = time.perf_counter()
        try:
            out = _run([*study, *extra], repo, env).stdout
        finally:
            if cluster is not None:
                cluster.shutdown()
        wall = time.perf_counter() - start
        steps = [_steps(m) for m in re.finditer(r"^done (\S+) on node \S+ in ([\d.]+) s \((.*)\)$", out, re.M)]
        results[name] = {"nodes": nodes, "wall_seconds": round(wall, 1), "experiments": steps}
        print(f"{name}: {wall:.1f} s", flush=True)
    base = results["local"]["wall_seconds"]
    for r in results.values():
        r["ratio_to_local"] = round(r["wall_seconds"] / base, 3)
    doc = {"conditions": args.conditions.split(","), "cpu_count": os.cpu_count(), "baseline": "local", "runs": results}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {OUT}; scratch folder {work} (delete it)")
    render(args)


def render(_: argparse.Namespace) -> None:
    doc = json.loads(OUT.read_text())
    lines = ["| run | Ray nodes | wall (s) | × local queue |", "|---|---|---|---|"]
    for name, r in doc["runs"].items():
        lines.append(f"| {name} | {r['nodes'] or '-'} | {r['wall_seconds']:.1f} | {r['ratio_to_local']:.2f} |")
    per = [e for r in doc["runs"].values() for e in r["experiments"]]
    if per:
        lines += ["", "| Ray experiment | total (s) | clone (s) | run (s) | push (s) | overhead share |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for e in per:
            overhead = e.get("clone", 0) + e.get("push", 0)
            lines.append(f"| {e['experiment']} | {e['seconds']:.1f} | {e.get('clone', 0):.1f} | {e.get('run', 0):.1f} "
                         f"| {e.get('push', 0):.1f} | {overhead / e['seconds']:.0%} |")  # fmt: skip
    lines.append("")
    lines.append(
        f"`python benchmarks/scaleout.py run` on {doc['cpu_count']} CPU cores; study fewshot, conditions "
        f"{', '.join(doc['conditions'])}, one seed, AE at 64 px for 1 epoch; baseline: DVC's local queue."
    )
    if not replace_block("scaleout", lines):
        raise SystemExit("README.md has no scaleout block")
    print("README.md: scaleout block rewritten")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--conditions", default="0,all")
    sub.add_parser("render")
    args = parser.parse_args()
    {"run": run, "render": render}[args.command](args)


if __name__ == "__main__":
    main()
