"""Before and after in one sitting: a bench run in turn against an earlier commit and this tree.

The machine is shared and its speed drifts, so figures from different sittings do not compare.
This checks the earlier commit out beside this tree (a temporary git worktree), gives it this
tree's bench/ scripts (so both sides are measured by the same harness and print the same BENCH
line), and runs the bench on the two sides alternately, `--rounds` times each (A B, B A, ...).
It prints each side's BENCH figures, their medians, and after / before for each figure.

Usage: python bench/ab.py --base <commit> [--rounds 3] bench/load.py [-- <the bench's arguments>]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bench_line(root: Path, script: str, extra: list[str]) -> dict:
    out = subprocess.run([sys.executable, str(root / script), *extra], cwd=root, capture_output=True, text=True,
                         check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("BENCH ")]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"{script} failed in {root} ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return json.loads(lines[-1][len("BENCH "):])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True, help="the earlier commit (the code path before)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("script", help="a bench script that ends with a BENCH line, e.g. bench/load.py")
    parser.add_argument("extra", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra

    work = Path(tempfile.mkdtemp(prefix="bench-ab-"))
    base = work / "base"
    subprocess.run(["git", "worktree", "add", "--detach", str(base), args.base], cwd=ROOT, check=True,
                   capture_output=True)
    try:
        for script in (ROOT / "bench").glob("*.py"):
            shutil.copy2(script, base / "bench" / script.name)
        if (ROOT / "node_modules").exists():
            (base / "node_modules").symlink_to(ROOT / "node_modules")
        sides = {"before": base, "after": ROOT}
        figures: dict[str, list[dict]] = {"before": [], "after": []}
        for round_ in range(args.rounds):
            order = ["before", "after"] if round_ % 2 == 0 else ["after", "before"]
            for side in order:
                figures[side].append(bench_line(sides[side], args.script, extra))
                print(f"round {round_ + 1} {side:<6} {json.dumps(figures[side][-1])}", flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False,
                       capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    keys = [k for k, v in figures["after"][0].items() if isinstance(v, int | float) and not isinstance(v, bool)]
    summary = {}
    print(f"{args.script}: medians of {args.rounds} runs each, before = {args.base[:12]}")
    for key in keys:
        before = statistics.median(run[key] for run in figures["before"])
        after = statistics.median(run[key] for run in figures["after"])
        ratio = after / before if before else float("nan")
        summary[key] = {"before": before, "after": after, "after_over_before": round(ratio, 3)}
        print(f"  {key:<32} before {before:9.2f}  after {after:9.2f}  after/before {ratio:6.3f}")
    print("BENCH " + json.dumps({"bench": "ab", "script": args.script, "base": args.base, "figures": summary}))


if __name__ == "__main__":
    main()
