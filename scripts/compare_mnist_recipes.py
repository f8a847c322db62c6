"""Compare recipes for the default MNIST model on a slice of the data (what BENCHMARKS.md's recipe table holds).

    python -m scripts.compare_mnist_recipes                       # every variant, 15,000 MNIST images, 4 epochs
    python -m scripts.compare_mnist_recipes --only styles drawn_1to1 --epochs 3

Each variant trains `scripts.train_default_models.fit` on the first `--subset` MNIST training images
plus drawn training digits and generated handwriting styles (both drawn once, then shared by every
variant), and is scored like the shipped model: MNIST test, the 2,000 drawn MNIST test digits and
the held-out handwriting-style check set (never trained on: its seeds are the check set's own).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from scripts import train_default_models as script

# name → (what changes, Recipe field overrides, conv widths)
VARIANTS: dict[str, tuple[str, dict, tuple[int, int, int]]] = {
    "today": ("today's recipe: MNIST + drawn digits (half as many)", {"drawn_share": 0.5}, (32, 64, 64)),
    "styles": ("+ generated styles (300 per style ≈ 2% each)", {"drawn_share": 0.5, "style_share": 0.02},
               (32, 64, 64)),
    "drawn_1to1": ("+ as many drawn digits as MNIST images", {"drawn_share": 1.0, "style_share": 0.02}, (32, 64, 64)),
    "elastic": ("+ elastic distortion on half the images", {"drawn_share": 1.0, "style_share": 0.02, "elastic": 0.5},
                (32, 64, 64)),
    "drawn_2to1": ("+ twice as many drawn digits as MNIST images (no elastic)",
                   {"drawn_share": 2.0, "style_share": 0.02}, (32, 64, 64)),
    "wider": ("+ wider convolutions (48, 96, 96)", {"drawn_share": 1.0, "style_share": 0.02, "elastic": 0.5},
              (48, 96, 96)),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subset", type=int, default=15_000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--only", nargs="*", choices=list(VARIANTS))
    parser.add_argument("--precision", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/mnist_recipe_pools.npz"))
    parser.add_argument("--results", type=Path, default=Path("/tmp/mnist_recipe_results.jsonl"))
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from cnn_core.engine import datasets

    mnist = datasets.load("mnist")
    per_style = int(round(args.subset * 0.02))
    if args.cache.exists():
        pools = dict(np.load(args.cache))
    else:
        began = time.perf_counter()
        drawn_x, drawn_y = script.drawn_training_digits(mnist, args.subset, script.SEED)
        style_x, style_y = script.style_training_drawings(per_style)
        pools = {"drawn_x": drawn_x, "drawn_y": drawn_y, "style_x": style_x, "style_y": style_y}
        np.savez(args.cache, **pools)
        print(f"drew the pools in {time.perf_counter() - began:.0f} s")
    most = max(int(args.subset * VARIANTS[name][1].get("drawn_share", 0.0)) for name in args.only or VARIANTS)
    if most > len(pools["drawn_x"]):
        # More drawings of training digits, with other brushes (a seed of their own), kept for the next run.
        more_x, more_y = script.drawn_training_digits(mnist, most - len(pools["drawn_x"]), script.SEED + 100)
        pools["drawn_x"] = np.concatenate([pools["drawn_x"], more_x])
        pools["drawn_y"] = np.concatenate([pools["drawn_y"], more_y])
        np.savez(args.cache, **pools)
    base = script.RECIPES["mnist"]
    for name in args.only or VARIANTS:
        what, overrides, widths = VARIANTS[name]
        overrides = dict(overrides)
        drawn = int(args.subset * overrides.pop("drawn_share", 0.0))
        styles = int(args.subset * overrides.pop("style_share", 0.0))
        parts_x = [mnist.x_train[: args.subset], pools["drawn_x"][:drawn]]
        parts_y = [mnist.y_train[: args.subset], pools["drawn_y"][:drawn]]
        if styles:
            # Every style's first `styles` drawings (the pool holds them style after style).
            keep = np.concatenate([np.arange(i * per_style, i * per_style + styles) for i in range(6)])
            parts_x.append(pools["style_x"][keep])
            parts_y.append(pools["style_y"][keep])
        training = replace(base.experiment.training, epochs=args.epochs)
        spec = script._compact_convnet("default_mnist", widths, 128, 0.3)
        recipe = replace(base, experiment=replace(base.experiment, model=spec, training=training), **overrides)
        x, y = np.concatenate(parts_x), np.concatenate(parts_y)
        began = time.perf_counter()
        model = script.fit(recipe, x, y, log=lambda *_: None, precision=args.precision)
        seconds = time.perf_counter() - began
        scores = script.score(model, mnist)
        row = {"variant": name, "what": what, "images": len(x), "epochs": args.epochs, "fit_s": round(seconds),
               "params": int(model.count_params()), **scores}
        print(json.dumps(row), flush=True)
        with args.results.open("a") as out:
            out.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
