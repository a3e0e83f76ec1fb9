"""The paper's polygon depth table at small scale: mask IoU of Polygon-RNN
with CBM and ConvLSTM decoders of 2, 5, 10 and 15 layers.

Every decoder has the same layout (`keras_cbm.models.polygon_rnn`: no
residual shortcuts, `filters` per layer, the package's cell defaults; TD
0.5 for CBM) and the same budget: the same crops of `polygons/easy`, the
same epochs, batch size and learning rate
(`examples/polygon_annotation.py`'s training), one run per seed. The test
IoU of greedy decoding is printed per depth and cell (mean ± std over the
seeds, beside the bounding-box baseline) and written to
`studies/results/polygon_depth.json`.

    python studies/polygon_depth.py --seeds 3    # hours on 2 CPU cores
    python studies/polygon_depth.py --quick      # tiny, ~1 min
"""

import argparse
import sys
import time
from pathlib import Path

# The harness the benchmarks and the studies share.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import harness  # noqa: E402
import numpy as np  # noqa: E402
from polygon_annotation import add_polygon_flags  # noqa: E402
from polygon_annotation import evaluate  # noqa: E402
from polygon_annotation import load  # noqa: E402
from polygon_annotation import train_model  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_polygon_flags(parser)
    add = parser.add_argument
    add("--depths", type=int, nargs="+", default=[2, 5, 10, 15])
    add(
        "--layer-types",
        nargs="+",
        choices=["cbm", "convlstm"],
        default=["cbm", "convlstm"],
    )
    add("--seeds", type=int, default=3, help="Runs per depth and cell.")
    harness.add_results_flag(parser)
    add("--quick", action="store_true", help="Tiny smoke run.")
    args = parser.parse_args(argv)
    if args.quick:
        args.config = "small"
        args.depths = [1, 2]
        args.seeds = 1
        args.epochs = 1
        args.batch_size = 8
        args.filters = 4
        args.feature_channels = 4
        args.encoder_filters = [4, 8]
        args.verbose = 0
    return args


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    train, test, config = load(args)
    print(
        f"polygons/{config.name}: depths {args.depths}, "
        f"{args.filters} filters, {args.epochs} epochs of batch "
        f"{args.batch_size}, {args.seeds} seeds",
        flush=True,
    )
    values = {"runs": {}}
    results_folder = harness.results_folder(args)
    box = None
    for layer_type in args.layer_types:
        for depth in args.depths:
            key = f"{layer_type}_{depth}"
            scores = []
            for seed in range(args.seeds):
                began = time.perf_counter()
                model, _ = train_model(
                    args, train, config, depth, layer_type, seed
                )
                iou, box, _ = evaluate(model, test, config)
                scores.append(iou)
                print(
                    f"{key} seed {seed}: IoU {iou:.3f} "
                    f"({(time.perf_counter() - began) / 60:.1f} min)",
                    flush=True,
                )
            values["runs"][key] = {
                "iou": scores,
                "mean": float(np.mean(scores)),
                "std": float(np.std(scores)),
                "parameters": model.count_params(),
            }
            values["bounding_box_iou"] = box
            results_path = harness.write_results(
                "polygon_depth", values, folder=results_folder
            )
    lines = [
        "| decoder | " + " | ".join(f"{d} layers" for d in args.depths) + " |",
        "|---|" + "---|" * len(args.depths),
    ]
    for layer_type in args.layer_types:
        cells = [
            "{mean:.3f} ± {std:.3f}".format(
                **values["runs"][f"{layer_type}_{d}"]
            )
            for d in args.depths
        ]
        lines.append(f"| {layer_type} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    print(
        f"Bounding-box baseline IoU: {box:.3f}; total time "
        f"{(time.perf_counter() - start) / 60:.1f} min"
    )
    print(f"Results: {results_path}")
    return values


if __name__ == "__main__":
    sys.exit(main() and None)
