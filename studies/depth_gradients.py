"""Depth trains: the gradient that reaches the first layer of a deep CBM
stack (at the layers' defaults, the gated T; the paper's cell; the
input-gated T), next to a ConvLSTM2D stack of the same layout, at
initialisation.

Both stacks get the same inputs, labels, layout (the backbone-supported
one: shortcuts every 5 layers, pooling after layers 5, 10 and 15 of 7x7
features), initializer and a fixed linear read-out of each frame; the loss
is the per-frame cross-entropy. Printed per stack and averaged over
initialisation seeds: the gradient norm of the first and last recurrent
layers' input kernels, their ratio (how much of the gradient survives the
depth), and the ratio CBM / ConvLSTM of the first layer's.

    python studies/depth_gradients.py            # about a minute on CPU
    python studies/depth_gradients.py --no-shortcuts --seeds 5
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The harness the benchmarks and the studies share.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import harness  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_cbm.layers import PAPER_CELL  # noqa: E402
from keras_cbm.layers import DeepCBM  # noqa: E402
from keras_cbm.layers.deep_cbm import REFERENCE_INITIALIZER  # noqa: E402

# The stacks compared: `DeepCBM` arguments beyond the shared layout.
STACKS = {
    "cbm": {"layer_type": "cbm"},
    "cbm-paper": {"layer_type": "cbm", **PAPER_CELL},
    "cbm-igated": {"layer_type": "cbm", "temporal_gate": "input"},
    "convlstm": {"layer_type": "convlstm"},
}


def kernel_gradient_norms(stack_arguments, seed, args):
    """Input-kernel gradient norms of every layer of one fresh stack."""
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    frames = rng.normal(
        size=(args.batch, args.steps, 7, 7, args.channels)
    ).astype("float32")
    labels = rng.integers(0, args.classes, (args.batch, args.steps))
    stack = DeepCBM(
        depth=args.depth,
        filters=args.filters,
        jump_stride=None if args.no_shortcuts else 5,
        shortcut="conv",
        pool_after=(5, 10, 15) if args.depth >= 15 else (),
        temporal_dropout=args.temporal_dropout,
        kernel_initializer=REFERENCE_INITIALIZER,
        recurrent_initializer=REFERENCE_INITIALIZER,
        seed=seed,
        **stack_arguments,
    )
    readout = keras.layers.Dense(args.classes)
    with tf.GradientTape() as tape:
        features = stack(frames, training=True)
        logits = readout(keras.ops.mean(features, axis=(2, 3)))
        loss = keras.ops.mean(
            keras.losses.sparse_categorical_crossentropy(
                labels, logits, from_logits=True
            )
        )
    kernels = [layer.cell.kernel for layer in stack.recurrent_layers]
    return np.array([float(tf.norm(g)) for g in tape.gradient(loss, kernels)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depth", type=int, default=15)
    parser.add_argument("--filters", type=int, default=32)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--temporal-dropout",
        type=float,
        default=1.0,
        help="CBM TD rate (the backbone model's is 1.0)",
    )
    parser.add_argument("--no-shortcuts", action="store_true")
    harness.add_results_flag(parser)
    args = parser.parse_args()

    norms = {
        name: np.mean(
            [
                kernel_gradient_norms(arguments, s, args)
                for s in range(args.seeds)
            ],
            axis=0,
        )
        for name, arguments in STACKS.items()
    }
    print(
        f"depth {args.depth}, {args.filters} filters, 7x7x{args.channels} "
        f"inputs, {args.steps} steps, batch {args.batch}, "
        f"{'no' if args.no_shortcuts else 'conv'} shortcuts, CBM TD "
        f"{args.temporal_dropout}, mean of {args.seeds} seeds"
    )
    last = f"|g| layer {args.depth}"
    print(f"{'stack':10s} {'|g| layer 1':>12s} {last:>13s} {'first/last':>11s}")
    for cell, n in norms.items():
        print(f"{cell:10s} {n[0]:12.3e} {n[-1]:13.3e} {n[0] / n[-1]:11.3e}")
    survival = {cell: n[0] / n[-1] for cell, n in norms.items()}
    values = {
        cell: {
            "first_layer": float(n[0]),
            "last_layer": float(n[-1]),
            "first_over_last": float(survival[cell]),
        }
        for cell, n in norms.items()
    }
    for name in ("cbm", "cbm-paper", "cbm-igated"):
        values[name]["first_layer_over_convlstm"] = float(
            norms[name][0] / norms["convlstm"][0]
        )
        values[name]["survival_over_convlstm"] = float(
            survival[name] / survival["convlstm"]
        )
        print(
            f"{name} / convlstm: first-layer gradient norm "
            f"{values[name]['first_layer_over_convlstm']:.3g}, first/last "
            f"survival {values[name]['survival_over_convlstm']:.3g}"
        )
    path = harness.write_results(
        "depth_gradients", values, folder=harness.results_folder(args)
    )
    print(f"Results: {path}")


if __name__ == "__main__":
    main()
