"""The overlap coherence loss's weight: where it starts to matter, and
whether it then helps.

At the paper's weight (0.8) the coherence loss changes nothing measurable
in `studies/claims.py` (a mean squared difference of probabilities of
about 1e-3 against a task loss of about 1.3). This script trains the
claims' clip model (`claims.py`'s classifier, data, clips, budget and
evaluation; `--depth` layers) with each coherence weight of `--weights`
for `--seeds` seeds and prints, per weight: the test accuracy (mean ±
std), the task loss and the (unweighted) coherence loss, both means over
the training steps, and the weighted coherence loss's share of the total.
The loss matters where its coherence loss falls below that of weight 0
(the overlapping clips' predictions are pulled together); it helps where
the accuracy rises above that of weight 0 by more than the seeds' spread.

    python studies/coherence_weight.py --seeds 2   # ~35 min, 2 CPU cores
    python studies/coherence_weight.py --quick   # tiny, ~1 min
"""

import argparse
import sys
import time
from pathlib import Path

# The harness the benchmarks and the studies share.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

# claims.py (beside this script) gives the model, data and training; its
# flags are accepted too.
import claims  # noqa: E402
import harness  # noqa: E402
import numpy as np  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--weights", type=float, nargs="+", default=[0, 0.8, 8, 80, 800])
    add("--depth", type=int, default=5, help="Layers of the CBM stack.")
    add("--learning-rate", type=float, default=3e-3)
    own, rest = parser.parse_known_args(argv)
    shared = claims.parse_args(rest)
    # One rate: every weight trains at it, on the whole train split.
    shared.learning_rates = [own.learning_rate]
    if shared.quick:
        own.depth = 2
        own.weights = [0, 80]
    return own, shared


def main(argv=None):
    own, args = parse_args(argv)
    start = time.perf_counter()
    config, splits, frame_shape, max_steps = claims.motion_order(args)
    print(
        f"motion_order/{config.name}: {own.depth}-layer CBM, clips "
        f"({args.clips_per_video} of {args.min_length}-{args.max_length} "
        f"steps), {args.steps} steps of {args.batch_size} videos, "
        f"{args.seeds} seeds per weight"
    )
    values = {}
    lines = [
        "| coherence weight | accuracy (mean ± std) | task loss | "
        "coherence loss | weighted share of the loss |",
        "|---|---|---|---|---|",
    ]
    for weight in own.weights:
        settings = {
            "depth": own.depth,
            "cell": "cbm",
            "scheme": "clips",
            "coherence": weight,
            "batch_norm": True,
        }
        runs = []
        for seed in range(args.seeds):
            run = claims.run_row(
                args,
                settings,
                own.learning_rate,
                *splits,
                frame_shape,
                max_steps,
                seed,
            )
            runs.append(run)
            print(
                f"weight {weight:g} seed {seed}: accuracy "
                f"{run['test_accuracy']:.3f}, "
                f"task loss {run['task_loss']:.3f}, "
                f"coherence loss {run['coherence_loss']:.2e}",
                flush=True,
            )
        accuracy = np.array([run["test_accuracy"] for run in runs])
        task = np.mean([run["task_loss"] for run in runs])
        coherence = np.mean([run["coherence_loss"] for run in runs])
        share = weight * coherence / (task + weight * coherence)
        values[f"{weight:g}"] = {
            "accuracy_mean": float(accuracy.mean()),
            "accuracy_std": float(accuracy.std()),
            "task_loss": float(task),
            "coherence_loss": float(coherence),
            "weighted_share": float(share),
            "runs": runs,
        }
        lines.append(
            f"| {weight:g} | {accuracy.mean():.3f} ± {accuracy.std():.3f} "
            f"| {task:.3f} | {coherence:.2e} | {share:.1%} |"
        )
    print("\n".join(lines))
    print(f"Chance: {1 / claims.NUM_CLASSES:.3f}.")
    path = harness.write_results(
        "coherence_weight", values, folder=harness.results_folder(args)
    )
    print(f"Results: {path}")
    print(f"Total time: {(time.perf_counter() - start) / 60:.1f} min")


if __name__ == "__main__":
    harness.fresh_heap()
    main()
