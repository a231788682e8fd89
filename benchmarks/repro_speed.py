"""Where `dvc repro` spends its time: fresh stage processes (the baseline) against the warm worker, in one run.

    python benchmarks/repro_speed.py                # HEAD in fresh processes (IADBENCH_WARM=0) vs HEAD warm
    python benchmarks/repro_speed.py --base REV     # REV in fresh processes vs HEAD warm
    python benchmarks/repro_speed.py --readme       # also write the README's block from the result

For each run (the baseline: ``--base``, default HEAD, every stage a fresh interpreter and every train cell measuring
its receptive fields, ``IADBENCH_SHIFT_CACHE=off``; then HEAD with the warm worker of :mod:`iadbench.warm` and the
shift cache, the defaults, the cache empty at the start) it clones this repository into a temporary folder, runs the
default `dvc repro` from nothing (the embedded synthetic dataset, this machine's CPU), then
`dvc exp run -S threshold.method=pr` (a rule switch), timing:

- every stage process, through a shim named ``iadbench`` first on PATH that times the real command (the stages'
  cmd is ``iadbench <verb>``), so both revisions are measured the same way;
- the start-up share: for each kind of stage, how long a fresh interpreter takes to import what that verb imports
  (torch, Lightning and anomalib for train and predict) in that revision's code, times the number of its stages.

Both clones use this checkout's virtual environment, with ``PYTHONPATH`` pointing at the clone's ``src`` so each runs
its own code, and a private socket folder for the warm worker (stopped afterwards). Afterwards it compares the
warm clone's rebuilt ``dvc.lock`` with the committed one (every output hash but the volatile ``reports/resources``
and ``reports/costs.*``): the lock-stability check at the default configuration, built through the warm worker.
Results go to ``reports/bench/repro_speed.json`` (and, with ``--readme``, the README block ``repro-speed``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml
from readme_blocks import PROJECT, replace_block, save_result

from iadbench import stages

BASE = "HEAD"  # the same code in fresh processes
VOLATILE = ("reports/resources/", "reports/costs.")
SHIM = """#!/usr/bin/env bash
start=$(date +%s%N)
"{real}" "$@"
rc=$?
end=$(date +%s%N)
printf '{{"argv": "%s", "seconds": %d.%03d, "rc": %s}}\\n' "$*" $(( (end - start) / 1000000000 )) \\
    $(( (end - start) / 1000000 % 1000 )) "$rc" >> "{log}"
exit $rc
"""
IMPORTS = {verb: "import " + ", ".join(modules) for verb, modules in stages.imports().items()}  # one fresh process each


def _kind(argv: str) -> str:
    words = [w for w in argv.split() if not w.startswith("--")]
    return words[0] if words else "?"


def _clone(rev: str, root: Path, name: str) -> Path:
    repo = root / name
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(PROJECT), str(repo)], check=True)
    subprocess.run(["git", "checkout", "-q", rev], cwd=repo, check=True)
    (repo / ".dvc/config.local").write_text("[core]\n    remote = none\n['remote \"none\"']\n    url = /nonexistent\n")
    return repo


def _env(repo: Path, bin_dir: Path, warm: bool) -> dict[str, str]:
    venv = Path(sys.executable).parent
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{venv}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": str(repo / "src"), "HF_HUB_OFFLINE": "1", "DVC_NO_ANALYTICS": "1",
            "IADBENCH_WARM": "1" if warm else "0", "XDG_RUNTIME_DIR": str(bin_dir.parent),
            # before: every train cell measures its receptive fields; after: once per backbone, weights and size
            # (a cache of this run's own, empty at its start)
            "IADBENCH_SHIFT_CACHE": str(bin_dir.parent / f"shifts-{repo.name}") if warm else "off",
            "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@invalid", "GIT_COMMITTER_NAME": "bench",
            "GIT_COMMITTER_EMAIL": "bench@invalid"}  # fmt: skip


def _timed(cmd: list[str], repo: Path, env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed in {repo}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start, proc.stdout


def _import_seconds(repo: Path, env: dict[str, str], statement: str, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-W", "ignore", "-c", statement], cwd=repo, env=env, check=True,
                       capture_output=True)  # fmt: skip
        best = min(best, time.perf_counter() - start)
    return best


def measure(rev: str, root: Path, warm: bool) -> dict:
    """Clone ``rev``, run the default `dvc repro` and a rule switch, with per-stage times and start-up estimates."""
    repo = _clone(rev, root, "warm" if warm else "fresh")
    short = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True).stdout
    bin_dir = root / f"bin-{repo.name}"
    bin_dir.mkdir()
    log = root / f"stages-{repo.name}.jsonl"
    shim = bin_dir / "iadbench"
    # a revision before iadbench.warm: its own CLI in a fresh process (the venv's console script imports warm)
    real = (f"{Path(sys.executable).parent / 'iadbench'}" if (repo / "src/iadbench/warm.py").is_file()
            else f'{sys.executable}" -m "iadbench.cli')  # fmt: skip
    shim.write_text(SHIM.format(real=real, log=log))
    shim.chmod(0o755)
    env = _env(repo, bin_dir, warm)
    repro_seconds, out = _timed(["dvc", "repro"], repo, env)
    stages = [json.loads(line) for line in log.read_text().splitlines()]
    log.write_text("")
    subprocess.run(["git", "add", "-A"], cwd=repo, env=env, check=True)
    subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@invalid", "commit", "-qm", "repro"],
                   cwd=repo, env=env, check=True)  # fmt: skip
    switch_seconds, switch_out = _timed(["dvc", "exp", "run", "-S", "threshold.method=pr"], repo, env)
    switch_stages = [json.loads(line) for line in log.read_text().splitlines()]
    by_kind: dict[str, dict[str, float]] = defaultdict(lambda: {"n": 0, "seconds": 0.0})
    for s in stages:
        k = by_kind[_kind(s["argv"])]
        k["n"] += 1
        k["seconds"] += float(s["seconds"])
    for kind, k in by_kind.items():
        statement = IMPORTS.get(kind, "import iadbench.cli")
        k["import_each"] = round(_import_seconds(repo, env, statement), 2)
        k["import_total"] = round(k["import_each"] * k["n"], 1)
        k["seconds"] = round(k["seconds"], 1)
    for folder in root.glob("iadbench-warm-*"):  # stop the clone's workers
        warm.stop(folder)
    return {
        "rev": short.strip(),  # the revision measured (before the clone's own commit of its rebuilt lock)
        "processes": "warm worker" if warm else "fresh",
        "repro_seconds": round(repro_seconds, 1),
        "stage_processes": len(stages),
        "stage_seconds": round(sum(float(s["seconds"]) for s in stages), 1),
        "by_kind": dict(by_kind),
        "rule_switch_seconds": round(switch_seconds, 1),
        "rule_switch_stages": sorted(set(re.findall(r"Running stage '([^']+)'", switch_out))),
        "rule_switch_stage_seconds": {_kind(s["argv"]): round(float(s["seconds"]), 1) for s in switch_stages},
        "repo": str(repo),
    }


def _outputs(lock: dict) -> dict[tuple[str, str], str]:
    return {(st, o["path"]): o.get("md5") for st, s in lock["stages"].items() for o in s.get("outs", [])}


def _clone_lock(repo: Path) -> dict[tuple[str, str], str]:
    """The output hashes of a clone's rebuilt lock (its commit after `dvc repro`)."""
    text = subprocess.run(["git", "show", "HEAD:dvc.lock"], cwd=repo, capture_output=True, text=True, check=True)
    return _outputs(yaml.safe_load(text.stdout))


def clones_agree(before: Path, after: Path) -> dict:
    """The two clones' rebuilt locks against each other (the same code: fresh processes vs the warm worker)."""
    a, b = _clone_lock(before), _clone_lock(after)
    compared = [k for k in a if not k[1].startswith(VOLATILE)]
    return {
        "outputs_compared": len(compared),
        "differ": sorted(f"{s}: {p}" for s, p in compared if a[(s, p)] != b.get((s, p))),
    }


def lock_check(rebuilt: Path) -> dict:
    """Output hashes of the rebuilt clone's lock against the committed lock (volatile files excluded)."""
    committed = _outputs(yaml.safe_load((PROJECT / "dvc.lock").read_text()))
    ours = _clone_lock(rebuilt)
    compared = [k for k in committed if not k[1].startswith(VOLATILE)]
    differ = sorted(f"{s}: {p}" for s, p in compared if ours.get((s, p)) != committed[(s, p)])
    stages = sorted({s.split("@")[0] for s, _ in compared})
    return {"outputs_compared": len(compared), "differ": differ, "stages": stages,
            "volatile_excluded": len(committed) - len(compared)}  # fmt: skip


def readme(result: dict) -> None:
    """The README block: per kind of stage, seconds before and after, and the ratios."""
    before, after = result["before"], result["after"]
    kinds = sorted(set(before["by_kind"]) | set(after["by_kind"]), key=lambda k: -after["by_kind"].get(k, {}).get(
        "seconds", 0))  # fmt: skip
    lines = [
        f"From `python benchmarks/repro_speed.py --readme` (`reports/bench/repro_speed.json`): the default "
        f"`dvc repro` in a fresh clone (an empty DVC cache: every cached output is rebuilt; a stage whose outputs are "
        f"all in git and still valid is skipped, as on a user's clone), then `dvc exp run -S threshold.method=pr`, "
        f"in clones of `{before['rev']}` with every stage a fresh process and every train cell measuring its "
        "receptive fields (before, `IADBENCH_WARM=0 IADBENCH_SHIFT_CACHE=off`) and "
        f"`{after['rev']}` with the warm worker and receptive fields measured once per backbone and size (after, the "
        "defaults; `IADBENCH_SHIFT_CACHE` empty at the start), one after the other on this machine "
        f"({os.cpu_count()} CPUs). Start-up = a fresh interpreter importing what that kind of stage imports, times "
        "its stages (what the warm worker spares all but the first of them); `–` = the stage did not run.",
        "",
        "| stage kind | stages | before (s) | after (s) | after / before | start-up of a fresh process (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for kind in kinds:
        b, a = before["by_kind"].get(kind, {}), after["by_kind"].get(kind, {})
        ratio = f"{a['seconds'] / b['seconds']:.2f}" if b.get("seconds") and a.get("seconds") else "–"
        lines.append(f"| {kind} | {a.get('n', b.get('n', 0))} | {b.get('seconds', '–')} | {a.get('seconds', '–')} | "
                     f"{ratio} | {a.get('import_total', '–')} |")  # fmt: skip
    lines += [
        f"| **dvc repro, wall** | {after['stage_processes']} | {before['repro_seconds']} | {after['repro_seconds']} | "
        f"{after['repro_seconds'] / before['repro_seconds']:.2f} | |",
        f"| **rule switch, wall** ({', '.join(after['rule_switch_stages'])}) | | {before['rule_switch_seconds']} | "
        f"{after['rule_switch_seconds']} | {after['rule_switch_seconds'] / before['rule_switch_seconds']:.2f} | |",
    ]  # fmt: skip
    lock, clones = result["lock"], result.get("clones")
    if clones is not None:
        same = "every one" if not clones["differ"] else f"all but {len(clones['differ'])}"
        lines += ["", f"Fresh and warm: the two clones' rebuilt `dvc.lock` have the same hash for {same} of "
                  f"{clones['outputs_compared']} outputs (volatile timing files excluded)."]  # fmt: skip
    if lock["differ"]:
        differ = sorted({d.split(":")[0].split("@")[0] for d in lock["differ"]})
        same = sorted(set(lock.get("stages", [])) - set(differ))
        lines += ["", f"Against the committed `dvc.lock` (built earlier, possibly on another machine): "
                  f"{len(lock['differ'])} of {lock['outputs_compared']} outputs differ, in the stages "
                  f"{', '.join(differ)}; identical in {', '.join(same) or 'none'}."]  # fmt: skip
    else:
        lines += [
            "",
            f"Lock stability: the rebuilt clone's `dvc.lock` has the committed hash for every one of "
            f"{lock['outputs_compared']} outputs ({lock['volatile_excluded']} volatile timing files excluded).",
        ]
    replace_block("repro-speed", lines)


def main() -> None:
    """Measure both revisions and write the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=BASE, help=f"the revision to compare with (default {BASE})")
    parser.add_argument("--readme", action="store_true", help="write the README block repro-speed")
    parser.add_argument("--keep", action="store_true", help="keep the clones (printed)")
    parser.add_argument("--render", action="store_true", help="only write the README block from the saved result")
    args = parser.parse_args()
    if args.render:
        readme(json.loads((PROJECT / "reports/bench/repro_speed.json").read_text()))
        return
    root = Path(tempfile.mkdtemp(prefix="iadbench-repro-speed-"))
    try:
        before = measure(args.base, root, warm=False)
        print(json.dumps({k: v for k, v in before.items() if k != "by_kind"}), flush=True)
        after = measure("HEAD", root, warm=True)
        print(json.dumps({k: v for k, v in after.items() if k != "by_kind"}), flush=True)
        result = {"before": before, "after": after, "lock": lock_check(Path(after["repo"])),
                  "clones": clones_agree(Path(before["repo"]), Path(after["repo"]))}  # fmt: skip
        save_result("repro_speed", result, Path.cwd())
        print(json.dumps(result["lock"]))
        if args.readme:
            readme(result)
    finally:
        if args.keep:
            print(f"clones kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
