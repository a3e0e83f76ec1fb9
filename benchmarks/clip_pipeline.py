"""Throughput of `overlapping_clips` against the training step it feeds.

What it measures, side by side in one run, on the same clips:

- `pipeline`: clips per second out of `overlapping_clips(...).batch(...)
  .prefetch(...)` over uint8 videos held in memory (by default 256 frames
  of 64x64x3, 4 clips per video), read alone;
- `training`: clips per second through `train_on_batch` of a small deep
  CBM model (`--depth` `ConvCBM2D` layers with 2x2 max pooling between
  them, global average pooling and a Dense head) on batches taken from
  that pipeline and held in memory, so that the step alone is timed.

It prints both rates and their ratio, with PASS/MISS against the target:
the pipeline at least 10x faster than training consumes clips, so that it
is never the bottleneck. Decoding video files is not part of the pipeline
measured here; TFDS or a file reader comes before it. Both rates are
measured alone; in training they share the CPUs when the model runs there.

Compilation: `tf.function` without `jit_compile`, because under XLA on CPU
back-propagation through `tf.while_loop` is many times slower.

Run from the repository root:

    TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/clip_pipeline.py
    python benchmarks/clip_pipeline.py --max-length 32 --batch-size 8
"""

import argparse
import os
import time

import harness
import numpy as np

# The pipeline is tf.data, so the model trains on TensorFlow as well.
os.environ["KERAS_BACKEND"] = "tensorflow"

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_cbm.data import overlapping_clips  # noqa: E402
from keras_cbm.layers import ConvCBM2D  # noqa: E402

TARGET_RATIO = 10.0


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--videos", type=int, default=8, help="distinct videos")
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--size", type=int, default=64, help="frame height")
    parser.add_argument("--clips-per-video", type=int, default=4)
    parser.add_argument("--min-length", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=16)
    parser.add_argument(
        "--batch-size", type=int, default=4, help="videos per batch"
    )
    parser.add_argument("--depth", type=int, default=3, help="ConvCBM2D layers")
    parser.add_argument("--filters", type=int, default=8)
    parser.add_argument("--classes", type=int, default=101)
    parser.add_argument(
        "--pipeline-batches", type=int, default=1000, help="batches timed"
    )
    parser.add_argument(
        "--train-steps", type=int, default=10, help="training steps timed"
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def video_dataset(args):
    """Random uint8 videos in memory, repeated forever."""
    rng = np.random.default_rng(args.seed)
    shape = (args.videos, args.frames, args.size, args.size, 3)
    videos = rng.integers(0, 256, shape, dtype=np.uint8)
    labels = rng.integers(0, args.classes, args.videos)
    return tf.data.Dataset.from_tensor_slices(
        {"video": videos, "label": labels}
    ).repeat()


def deep_cbm(args):
    """A small deep CBM classifier of single clips."""
    layers = [
        keras.Input((args.max_length, args.size, args.size, 3)),
        keras.layers.Rescaling(1.0 / 255),
    ]
    for depth in range(args.depth):
        last = depth == args.depth - 1
        layers.append(
            ConvCBM2D(
                args.filters, 3, padding="same", return_sequences=not last
            )
        )
        if not last:
            layers.append(keras.layers.MaxPooling3D((1, 2, 2)))
    layers += [
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(args.classes),
    ]
    model = keras.Sequential(layers)
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
    )
    return model


def one_clip_per_example(inputs, labels):
    """`(batch, K, T, ...)` clips to `(batch * K, T, ...)` examples.

    Padding steps are zero frames and the mask is dropped: only the cost of
    a step is measured here.
    """
    clips = inputs["clips"]
    shape = tf.shape(clips)
    examples = tf.reshape(clips, tf.concat([[-1], shape[2:]], 0))
    return examples, tf.repeat(labels, shape[1])


def time_pipeline(pipeline, batches):
    """Clips per second read from `pipeline`, after a warm-up."""
    iterator = iter(pipeline)
    for _ in range(10):
        next(iterator)
    clips = 0
    start = time.perf_counter()
    for _ in range(batches):
        inputs, _ = next(iterator)
        clips += inputs["clips"].shape[0] * inputs["clips"].shape[1]
    return clips / (time.perf_counter() - start)


def time_training(model, batches, steps):
    """Clips per second through `train_on_batch`, after a warm-up."""
    for examples, labels in batches[:2]:
        model.train_on_batch(examples, labels)
    clips = 0
    start = time.perf_counter()
    for step in range(steps):
        examples, labels = batches[step % len(batches)]
        model.train_on_batch(examples, labels)
        clips += examples.shape[0]
    return clips / (time.perf_counter() - start)


def main():
    args = parse_args()
    pipeline = (
        overlapping_clips(
            video_dataset(args),
            clips_per_video=args.clips_per_video,
            min_length=args.min_length,
            max_length=args.max_length,
            seed=args.seed,
        )
        .batch(args.batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    batches = list(pipeline.map(one_clip_per_example).take(4))
    model = deep_cbm(args)

    pipeline_rate = time_pipeline(pipeline, args.pipeline_batches)
    training_rate = time_training(model, batches, args.train_steps)
    ratio = pipeline_rate / training_rate

    clips_per_batch = args.batch_size * args.clips_per_video
    gpus = len(tf.config.list_physical_devices("GPU"))
    print(
        f"videos: uint8 {args.frames}x{args.size}x{args.size}x3, "
        f"{args.clips_per_video} clips per video of "
        f"{args.min_length}-{args.max_length} frames, batches of "
        f"{args.batch_size} videos ({clips_per_batch} clips); model: "
        f"{args.depth} ConvCBM2D layers of {args.filters} filters; "
        f"{os.cpu_count()} CPUs, {gpus} GPUs"
    )
    print(f"pipeline: {pipeline_rate:10.1f} clips/s")
    print(
        f"training: {training_rate:10.1f} clips/s "
        f"({training_rate / clips_per_batch:.2f} steps/s)"
    )
    harness.check("pipeline / training", ratio, TARGET_RATIO, at_most=False)


if __name__ == "__main__":
    main()
