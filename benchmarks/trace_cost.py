"""Time to the first training step of the main job's model, with and without
state handover, and how the traced graph grows with the clips per video.

The main job (`examples/action_recognition.py`) trains a standalone deep
CBM classifier (here with the paper's T) with `CoherenceModel` on 4 clips of
up to 24 steps per video, batches of 16 videos of 32x32 grayscale frames
(its settings, from `harness.main_job`). For each
number of clips, this script builds a fresh trainer and times its first
`fit` step (tracing, compiling and one step), and counts the nodes of the
traced training graph (TensorFlow's graph and its function library). The
handover graph must grow linearly with the clips: the increments per added
clip are printed.

    python benchmarks/trace_cost.py                # TensorFlow backend
    python benchmarks/trace_cost.py --clips 2 4 8 --batch-size 4
"""

import argparse
import time

import harness

JOB = harness.main_job()


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--clips", type=int, nargs="+", default=[2, 4, 6, 8])
    add("--steps", type=int, default=JOB["steps"], help="Clip length, steps.")
    add("--batch-size", type=int, default=JOB["videos"], help="Videos a batch.")
    add("--stage-filters", type=int, nargs="+", default=JOB["stage_filters"])
    add("--blocks-per-stage", type=int, default=1)
    return parser.parse_args()


def graph_nodes(graph_def):
    return len(graph_def.node) + sum(
        len(function.node_def) for function in graph_def.library.function
    )


def measure(args, clips, handover):
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_cbm import models
    from keras_cbm.training import CoherenceModel

    keras.utils.set_random_seed(0)
    frame_shape = JOB["frame_shape"]
    net = models.standalone_classifier(
        JOB["classes"],
        frame_shape=frame_shape,
        stage_filters=tuple(args.stage_filters),
        blocks_per_stage=args.blocks_per_stage,
    )
    trainer = CoherenceModel(net, state_handover=handover)
    trainer.compile(
        keras.optimizers.AdamW(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    shape = (args.batch_size, clips, args.steps)
    alignment = np.broadcast_to(
        np.arange(args.steps) + 6 * np.arange(clips)[:, None], shape
    ).astype("int32")
    inputs = {
        "clips": np.random.rand(*shape, *frame_shape).astype("float32"),
        "alignment": alignment,
    }
    labels = np.zeros(args.batch_size, "int32")
    dataset = tf.data.Dataset.from_tensors((inputs, labels))
    start = time.perf_counter()
    trainer.fit(dataset, epochs=1, verbose=0)
    first_step = time.perf_counter() - start
    traced = tf.function(lambda x: trainer(x, training=True))
    nodes = graph_nodes(
        traced.get_concrete_function(
            keras.tree.map_structure(
                lambda a: tf.TensorSpec(a.shape, a.dtype), inputs
            )
        ).graph.as_graph_def()
    )
    return first_step, nodes


def main():
    args = parse_args()
    print(
        "| clips | handover | first step (s) | forward graph nodes | "
        "nodes per added clip |"
    )
    print("|---|---|---|---|---|")
    for handover in (False, True):
        previous = None
        for clips in args.clips:
            seconds, nodes = measure(args, clips, handover)
            growth = (
                ""
                if previous is None
                else (f"{(nodes - previous[1]) / (clips - previous[0]):.0f}")
            )
            previous = (clips, nodes)
            print(
                f"| {clips} | {handover} | {seconds:.1f} | {nodes} | "
                f"{growth} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
