"""Trains a tiny deep CBM classifier, exports it as a SavedModel and serves a
video whole (`classify`) and frame by frame (`step`).

The videos are generated: class 1 is brighter than class 0. The client
part uses TensorFlow only, as a server would.

    python examples/serving.py                  # about 30 seconds on 2 CPUs
    python examples/serving.py --help
"""

import argparse
import os
import tempfile

import numpy as np

FRAME_SHAPE = (16, 16, 3)


def generated_videos(count, frames, seed=0):
    """uint8 videos `(count, frames, 16, 16, 3)` and their labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 2
    videos = rng.integers(0, 128, (count, frames) + FRAME_SHAPE)
    return (videos + 127 * labels[:, None, None, None, None]).astype(
        "uint8"
    ), labels


def train(videos, labels, epochs):
    """A tiny coherence-trained classifier of the uint8 videos."""
    import keras
    import tensorflow as tf

    from keras_cbm import data
    from keras_cbm import models
    from keras_cbm.training import CoherenceModel

    keras.utils.set_random_seed(0)
    net = models.standalone_classifier(
        2,
        frame_shape=FRAME_SHAPE,
        stage_filters=(4,),
        blocks_per_stage=1,
        # A few dozen steps leave batch normalisation's moving statistics,
        # which serving uses, far from the training batches' statistics.
        batch_norm=False,
    )
    trainer = CoherenceModel(net, coherence_weight=0.5)
    trainer.compile(
        keras.optimizers.Adam(1e-2),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    dataset = tf.data.Dataset.from_tensor_slices(
        {"video": videos, "label": labels}
    ).map(lambda v: dict(v, video=tf.cast(v["video"], "float32") / 255))
    clips = data.overlapping_clips(dataset, 3, 4, 8, seed=0).batch(4)
    trainer.fit(clips, epochs=epochs, shuffle=False, verbose=0)
    return trainer


def serve(path, video):
    """The client: whole-video and frame-by-frame probabilities."""
    import tensorflow as tf

    served = tf.saved_model.load(path)
    classify = served.signatures["classify"]
    step = served.signatures["step"]
    whole = classify(frames=video[None])["probabilities"][0]

    specs = step.structured_input_signature[1]
    states = {
        name: tf.zeros([1, *spec.shape[1:]], spec.dtype)
        for name, spec in specs.items()
        if name != "frame"
    }
    frames = []
    for frame in video:
        outputs = step(frame=frame[None], **states)
        states = {name: outputs[name] for name in states}
        frames.append(outputs["probabilities"][0])
    return whole.numpy(), np.stack(frames)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--videos", type=int, default=16, help="Generated videos.")
    add("--frames", type=int, default=32, help="Frames per video.")
    add("--epochs", type=int, default=10, help="Training epochs.")
    add("--output", default=None, help="SavedModel folder; none: a new temp.")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    # It exports: TensorFlow's backend whatever the environment says (a
    # model trained under JAX loads and exports under TensorFlow).
    os.environ["KERAS_BACKEND"] = "tensorflow"
    # Imported after parsing, so that `--help` answers at once.
    from keras_cbm.serving import export

    videos, labels = generated_videos(args.videos, args.frames)
    # Trained on frames in [0, 1]: the signatures scale uint8 by 1 / 255.
    trainer = train(videos, labels, args.epochs)
    path = export(trainer, args.output or tempfile.mkdtemp())
    print(f"SavedModel: {path}")
    for video, label in zip(videos[:2], labels[:2], strict=True):
        whole, frames = serve(path, video)
        print(
            f"label {label}: classify {np.round(whole, 3)}, mean of "
            f"{len(frames)} steps {np.round(frames.mean(0), 3)}"
        )


if __name__ == "__main__":
    main()
