"""Peak training memory of `keras_cbm.training.TruncatedBPTT` against the
video's length: chunks of `--chunk` frames, with and without
rematerialisation, and full back-propagation through time (one chunk as
long as the video), each row in a fresh process (TensorFlow backend).

Model: `ConvCBM2D(--filters)` then `ConvLSTM2D(--filters)` on 32x32x3
frames, per-frame pooling and a dense layer; `--steps` SGD steps of 2
videos after one step that traces the training function. Memory: the
peak resident memory above what the process held before those steps
(`harness.PeakMemory`). Goal (issue 27): with
rematerialisation, the peak at 4x the frames stays within 1.5x.

    python benchmarks/tbptt_memory.py     # ~3 min on 2 CPU cores
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import json  # noqa: E402

import harness  # noqa: E402


def row(frames, chunk, rematerialize, filters, steps):
    """Trains in this process; returns the peak memory in MiB."""
    import keras
    import numpy as np

    from keras_cbm.layers import ConvCBM2D
    from keras_cbm.training import TruncatedBPTT

    keras.utils.set_random_seed(0)
    net = keras.Sequential(
        [
            keras.Input((None, 32, 32, 3)),
            ConvCBM2D(filters, 3, padding="same", return_sequences=True),
            keras.layers.ConvLSTM2D(
                filters, 3, padding="same", return_sequences=True
            ),
            keras.layers.TimeDistributed(keras.layers.GlobalAveragePooling2D()),
            keras.layers.Dense(2),
        ]
    )
    trainer = TruncatedBPTT(net, chunk, rematerialize=rematerialize)
    trainer.compile(
        keras.optimizers.SGD(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    videos = np.random.default_rng(0).random((2, frames, 32, 32, 3))
    labels = np.array([0, 1])
    # Tracing's memory grows with the chunks (a Python loop): one step
    # first, so that the peak is the training steps'.
    trainer.fit(videos.astype("float32"), labels, epochs=1, verbose=0)
    with harness.PeakMemory() as memory:
        trainer.fit(videos.astype("float32"), labels, epochs=steps, verbose=0)
    return memory.bytes / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, nargs=2, default=[64, 256])
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--row", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        frames, chunk, rematerialize = json.loads(args.row)
        harness.emit(
            row(frames, chunk, rematerialize, args.filters, args.steps)
        )
        return
    schemes = [
        ("TBPTT, rematerialised", args.chunk, True),
        ("TBPTT, kept activations", args.chunk, False),
        ("full BPTT", None, False),
    ]
    print(
        f"| scheme | peak MiB, {args.frames[0]} frames | "
        f"{args.frames[1]} frames | ratio |"
    )
    print("|---|---|---|---|")
    ratios = {}
    for name, chunk, rematerialize in schemes:
        peaks = []
        for frames in args.frames:
            peaks.append(
                harness.run_fresh(
                    __file__,
                    [
                        "--filters",
                        str(args.filters),
                        "--steps",
                        str(args.steps),
                        "--row",
                        json.dumps([frames, chunk or frames, rematerialize]),
                    ],
                    env={"KERAS_BACKEND": "tensorflow"},
                )
            )
        ratios[name] = peaks[1] / peaks[0]
        print(
            f"| {name} | {peaks[0]:.0f} | {peaks[1]:.0f} | {ratios[name]:.2f} |"
        )
    harness.check(
        f"rematerialised TBPTT's peak growth for "
        f"{args.frames[1] // args.frames[0]}x the frames",
        ratios["TBPTT, rematerialised"],
        1.5,
    )


if __name__ == "__main__":
    main()
