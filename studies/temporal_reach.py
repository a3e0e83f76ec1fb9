"""How far back in time a stack's last-frame output reaches, at initialisation.

For each model family of `studies/memory_tasks.py` (`--models`), the
classifier of that benchmark (pooled readout of the last frame) is built
with seed 0 and fed `--videos` videos of the order-of-events task; the
gradient of the sum of its logits with respect to the input frames gives,
per frame, a norm. The table prints, per family and depth, the norm at
the last frame and the ratio of the norm `k` frames earlier to it: a
stack whose ratio at `k` is ~0 cannot learn, by gradient, from evidence
`k` frames before its read-out. Ratios are means over the videos.

    python studies/temporal_reach.py --models cbm cbm-ref convlstm
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# `memory_tasks` lies beside this script; the harness the benchmarks and
# the studies share, in benchmarks/.
here = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [here, os.path.join(os.path.dirname(here), "benchmarks")]

import harness  # noqa: E402
import memory_tasks  # noqa: E402

DISTANCES = (1, 5, 10, 20, 30)


def reach(family, depth, videos, filters):
    keras.utils.set_random_seed(0)
    model = memory_tasks.classifier(
        memory_tasks.MODELS[family],
        depth,
        "pooled",
        filters,
        videos.shape[2:],
        2,
    )
    frames = tf.convert_to_tensor(videos)
    with tf.GradientTape() as tape:
        tape.watch(frames)
        total = tf.reduce_sum(model(frames, training=False))
    gradient = tape.gradient(total, frames).numpy()
    norms = np.sqrt((gradient**2).sum(axis=(2, 3, 4)))  # (videos, frames)
    last = norms[:, -1]
    return last.mean(), [
        float(np.mean(norms[:, -1 - k] / last)) for k in DISTANCES
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["cbm", "convlstm"])
    parser.add_argument("--depths", type=int, nargs="+", default=[1, 15])
    parser.add_argument("--videos", type=int, default=16)
    parser.add_argument("--filters", type=int, default=8)
    harness.add_results_flag(parser)
    args = parser.parse_args(argv)
    videos, _ = memory_tasks.make_task("order", args.videos, seed=0)
    print(
        "| model | depth | gradient norm at the last frame | "
        + " | ".join(f"ratio {k} frames back" for k in DISTANCES)
        + " |"
    )
    print("|---" * (3 + len(DISTANCES)) + "|")
    values = {"distances": list(DISTANCES), "rows": {}}
    for family in args.models:
        for depth in args.depths:
            last, ratios = reach(family, depth, videos, args.filters)
            values["rows"][f"{family}:{depth}"] = {
                "last_frame_norm": float(last),
                "ratios": ratios,
            }
            print(
                f"| {family} | {depth} | {last:.2e} | "
                + " | ".join(f"{r:.1e}" for r in ratios)
                + " |",
                flush=True,
            )
    path = harness.write_results(
        "temporal_reach", values, argv=argv, folder=harness.results_folder(args)
    )
    print(f"Results: {path}")


if __name__ == "__main__":
    main()
