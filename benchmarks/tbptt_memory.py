"""Memory that `fit` of `keras_cbm.training.TruncatedBPTT` adds against the
number of chunks a video holds: rematerialised, with kept activations, and
full back-propagation through time (one chunk as long as the video), each
row in a fresh process.

Model (issue 40's): two `ConvCBM2D(--filters)` layers
on 16x16 grayscale frames, per-frame pooling and a dense layer;
batches of 2 videos, chunks of `--chunk` frames; `--epochs` epochs of `fit`
on 2 videos, tracing included (a Python loop over chunks traced every
chunk, so tracing's memory is part of what is measured). Memory: the peak
resident memory above what the process held before `fit`
(`harness.PeakMemory`). Goal (issue 40): rematerialised TBPTT's memory at
8x the chunks within 1.3x.

    python benchmarks/tbptt_memory.py     # ~3 min on 2 CPU cores
    python benchmarks/tbptt_memory.py --backend jax
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import json  # noqa: E402

import harness  # noqa: E402


def row(frames, chunk, rematerialize, filters, epochs):
    """Trains in this process; returns the peak memory `fit` adds, MiB."""
    import keras
    import numpy as np

    from keras_cbm.layers import ConvCBM2D
    from keras_cbm.training import TruncatedBPTT

    keras.utils.set_random_seed(0)
    net = keras.Sequential(
        [
            keras.Input((None, 16, 16, 1)),
            ConvCBM2D(filters, 3, padding="same", return_sequences=True),
            ConvCBM2D(filters, 3, padding="same", return_sequences=True),
            keras.layers.TimeDistributed(keras.layers.GlobalAveragePooling2D()),
            keras.layers.Dense(2),
        ]
    )
    trainer = TruncatedBPTT(net, chunk, rematerialize=rematerialize)
    trainer.compile(
        keras.optimizers.SGD(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    videos = np.random.default_rng(0).random((2, frames, 16, 16, 1))
    labels = np.array([0, 1])
    with harness.PeakMemory() as memory:
        trainer.fit(videos.astype("float32"), labels, epochs=epochs, verbose=0)
    return memory.bytes / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, nargs=2, default=[4, 32])
    parser.add_argument("--chunk", type=int, default=8)
    parser.add_argument("--filters", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument(
        "--backend", choices=["tensorflow", "jax"], default="tensorflow"
    )
    parser.add_argument("--row", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        frames, chunk, rematerialize = json.loads(args.row)
        harness.emit(
            row(frames, chunk, rematerialize, args.filters, args.epochs)
        )
        return
    schemes = [
        ("TBPTT, rematerialised", args.chunk, True),
        ("TBPTT, kept activations", args.chunk, False),
        ("full BPTT", None, False),
    ]
    few, many = args.chunks
    print(
        f"{args.backend}: MiB fit adds, videos of {few} and {many} chunks of "
        f"{args.chunk} frames"
    )
    print(f"| scheme | {few} chunks | {many} chunks | ratio |")
    print("|---|---|---|---|")
    ratios = {}
    for name, chunk, rematerialize in schemes:
        peaks = []
        for chunks in args.chunks:
            frames = chunks * args.chunk
            peaks.append(
                harness.run_fresh(
                    __file__,
                    [
                        "--filters",
                        str(args.filters),
                        "--epochs",
                        str(args.epochs),
                        "--row",
                        json.dumps([frames, chunk or frames, rematerialize]),
                    ],
                    env={"KERAS_BACKEND": args.backend},
                )
            )
        ratios[name] = peaks[1] / peaks[0]
        print(
            f"| {name} | {peaks[0]:.0f} | {peaks[1]:.0f} | {ratios[name]:.2f} |",
            flush=True,
        )
    harness.check(
        f"rematerialised TBPTT's memory at {many // few}x the chunks",
        ratios["TBPTT, rematerialised"],
        1.3,
    )


if __name__ == "__main__":
    main()
