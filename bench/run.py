"""Run every benchmark and write its report (bench/out/), from which BENCHMARKS.md is kept.

Each module in BENCHMARKS exposes `run(quick: bool) -> dict`. A result may carry a "summary" list
of rows {what, value, compared_with, goal, met}; those rows form the goals table at the top of
the report, and every other scalar is listed in the module's own section.

    python -m bench.run            # full run (~20 min on 2 cores), writes bench/out/BENCHMARKS.full.md
    python -m bench.run --quick    # smoke run for CI, writes bench/out/BENCHMARKS.quick.md
    python -m bench.run --only bench.learner_waits   # writes bench/out/bench.learner_waits.md

BENCHMARKS.md itself is written by hand from these reports: it keeps each figure with the command,
the conditions (load average) and what it means, which a generated table cannot, so no run
overwrites it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Order matters a little: the browser-driven benchmarks come last so their servers don't
# compete with the CPU-bound measurements before them.
BENCHMARKS = [
    "bench.predict_latency",
    "bench.feature_maps",
    "bench.explain_speed",
    "bench.classroom_load",
    "bench.drawn_digits",
    "bench.handwriting_styles",
    "bench.finetune",
    "bench.own_classes",
    "bench.training_overhead",
    "bench.filmstrip_overhead",
    "bench.quick_preset",
    "bench.training_speed",
    "bench.preset_accuracy",
    "bench.memory_jobs",
    "bench.redis_workers",
    "bench.web_memory",
    "bench.learner_waits",
    "bench.cold_start",
    "bench.inside_model_rss",
    "bench.pages_rss",
    "bench.load_test",
    "bench.hostile_inputs",
    "bench.evaluate_fairness",
]


def _machine() -> dict[str, str]:
    import numpy
    import streamlit

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu cores": str(os.cpu_count()),
        "numpy": numpy.__version__,
        "streamlit": streamlit.__version__,
    }
    try:
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
    except ImportError:
        info["tensorflow"] = "not installed"
    try:
        with open("/proc/cpuinfo") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
        info["cpu"] = model
    except OSError:
        pass
    return info


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return "`" + json.dumps(value, default=str)[:200] + "`"
    return str(value)


def render(results: dict[str, dict], machine: dict[str, str], command: str, seconds: float) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Command: `{command}` — run on {dt.date.today().isoformat()}, took {seconds / 60:.1f} min.",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()),
        "",
        "## Goals",
        "",
        "| what | measured | compared with | goal | met |",
        "|---|---|---|---|---|",
    ]
    for result in results.values():
        for row in result.get("summary", []):
            met = {True: "yes", False: "**no**", None: "—"}[row.get("met")]
            lines.append(
                f"| {row['what']} | {row['value']} | {row.get('compared_with', '')} | {row.get('goal', '')} | {met} |"
            )
    for name, result in results.items():
        lines += ["", f"## {name}", ""]
        if "error" in result:
            lines += ["Failed:", "", "```", result["error"], "```"]
            continue
        if result.get("notes"):
            lines += [result["notes"], ""]
        lines += ["| figure | value |", "|---|---|"]
        for key, value in result.items():
            if key in ("summary", "notes", "attacks"):
                continue
            lines.append(f"| {key} | {_format(value)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, checks the scripts still work")
    parser.add_argument("--only", nargs="*", help="run only these modules (e.g. bench.predict_latency)")
    parser.add_argument("--output", type=Path, help="where to write the report")
    args = parser.parse_args(argv)

    names = args.only or BENCHMARKS
    default_name = "BENCHMARKS.quick.md" if args.quick else "BENCHMARKS.full.md"
    if args.only:
        default_name = ("quick." if args.quick else "") + "+".join(args.only) + ".md"
    output = args.output or (ROOT / "bench" / "out" / default_name)
    command = "make bench-quick" if args.quick else "make bench"
    if args.only:
        command = f"python -m bench.run {'--quick ' if args.quick else ''}--only {' '.join(names)}"
    start = time.perf_counter()
    results: dict[str, dict] = {}
    failed = False
    for name in names:
        print(f"== {name}", flush=True)
        begun = time.perf_counter()
        try:
            result = importlib.import_module(name).run(quick=args.quick)
        except Exception:
            failed = True
            result = {"error": traceback.format_exc()}
        result.setdefault("seconds", round(time.perf_counter() - begun, 1))
        results[name] = result
        print(json.dumps({k: v for k, v in result.items() if k != "summary"}, default=str)[:2000], flush=True)
        for row in result.get("summary", []):
            print(f"   {row['what']}: {row['value']} (goal {row.get('goal', '')}, met={row.get('met')})", flush=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(results, _machine(), command, time.perf_counter() - start))
    print(f"wrote {output}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
