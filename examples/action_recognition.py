"""Trains a deep CBM action classifier on Motion Order with overlapping
clips and the overlap coherence loss.

The main job. It builds the `motion_order` dataset locally (TFDS, about
30 s), samples random overlapping clips of every training video
(`keras_cbm.data.overlapping_clips`), trains a standalone deep CBM
classifier with the overlap coherence loss (`keras_cbm.training.
CoherenceModel`) under the `model.fit` progress bar, evaluates per video
on sliding windows that cover every test video, then saves the model
(`.keras`), a PNG of the training curves and a SavedModel, and prints
where everything went and the test accuracy next to chance (1/12).

Clips are read every `--frame-stride` frames so that a clip of
`--max-length` steps spans a large part of a 128-160-frame video: the
label is the order of the agent's two motions, and a clip that lies inside
one leg of the motion only narrows it to two classes.

The CBM layers are at their defaults, whose temporal unit is gated (the
README's "Design decisions"): telling the order of the two motions needs
the first one remembered. `--paper-cell` trains the paper's cell instead
(`keras_cbm.layers.PAPER_CELL`), whose T forgets within a few frames.

Your own videos: `--videos DIR` trains on a folder of video files, one
subfolder per class (with `DIR/train` and `DIR/test` folders of them, or
20 % of the files held out for testing), decoding only the frames of the
sampled clips (`keras_cbm.data.video_clips_from_directory`); `--tfds NAME`
on a TFDS video dataset with `ucf101`'s features (`video`, `label`).
Frames are resized to `--frame-size` (32) in `--color-mode`.

    python examples/action_recognition.py          # <= 10 min on 2 CPU cores
    python examples/action_recognition.py --epochs 30 --stage-filters 16 32
    python examples/action_recognition.py --videos DIR --color-mode rgb
"""

import argparse
import collections
import importlib.util
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# TensorFlow, Keras and keras_cbm are imported in the functions that use
# them, so that `--help` (and `anticipation.py`, which imports this module)
# answers before they load.


def add_cell_flags(parser):
    """Adds the flags that change the CBM cell from the layers' defaults
    (`cell_arguments` reads them), shared by the examples and benchmarks."""
    parser.add_argument(
        "--merge",
        choices=["add", "multiply", "concat"],
        default=None,
        help="The CBM's merge of R and T; none: the layers' default.",
    )
    parser.add_argument(
        "--recurrent-activation",
        default=None,
        help="The activation of the CBM's T; none: the layers' default.",
    )
    parser.add_argument(
        "--kernel-initializer",
        default=None,
        help="The initializer of R's and T's input kernel (a Keras name, or "
        "'reference': the reference's gain-3 Xavier); none: the model's "
        "default.",
    )
    parser.add_argument(
        "--recurrent-initializer",
        default=None,
        help="The initializer of T's recurrent kernel, as "
        "--kernel-initializer; none: the model's default.",
    )


def cell_arguments(args, base=None):
    """The CBM cell keywords of `add_cell_flags`' flags that were given,
    on top of `base` (e.g. `keras_cbm.layers.PAPER_CELL`)."""
    from keras_cbm.layers.deep_cbm import REFERENCE_INITIALIZER

    cell = dict(base or {})
    for name in (
        "merge",
        "recurrent_activation",
        "kernel_initializer",
        "recurrent_initializer",
    ):
        value = getattr(args, name, None)
        if value == "reference" and name.endswith("initializer"):
            value = REFERENCE_INITIALIZER
        if value is not None:
            cell[name] = value
    return cell


def parse_args(argv=None, description=None, **defaults):
    """The flags; `defaults` replaces some of their defaults (shown by
    `--help`)."""
    parser = argparse.ArgumentParser(
        description=description or __doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--config", default="recognition", help="motion_order config.")
    add(
        "--videos",
        default=None,
        help="A folder of video files, one subfolder per class (or train/ "
        "and test/ folders of them), instead of motion_order.",
    )
    add(
        "--tfds",
        default=None,
        help="A TFDS video dataset with ucf101's features (video, label) "
        "and train/test splits, instead of motion_order.",
    )
    add(
        "--color-mode",
        choices=("grayscale", "rgb"),
        default="grayscale",
        help="Channels of --videos and --tfds frames.",
    )
    add(
        "--on-error",
        choices=("raise", "skip"),
        default="raise",
        help="--videos: stop at an unreadable file or empty class folder, "
        "or leave it out with a warning.",
    )
    add(
        "--train-videos",
        type=int,
        default=None,
        help="Videos in the train split; none: the config's (1600). "
        "A different number builds a custom config.",
    )
    add("--test-videos", type=int, default=None, help="As --train-videos.")
    add(
        "--min-frames",
        type=int,
        default=None,
        help="Shortest video; none: the config's (128).",
    )
    add(
        "--max-frames",
        type=int,
        default=None,
        help="Longest video; none: the config's (160).",
    )
    add(
        "--frame-size",
        type=int,
        default=None,
        help="Frame rows and cols; none: the config's (32); --videos and "
        "--tfds frames are resized to it (32).",
    )
    add(
        "--data-dir",
        default="outputs/tensorflow_datasets",
        help="Where TFDS builds (or finds) the dataset.",
    )
    add("--frame-stride", type=int, default=4, help="Frames between steps.")
    add("--clips-per-video", type=int, default=4, help="Clips per video.")
    add("--min-length", type=int, default=12, help="Shortest clip, steps.")
    add("--max-length", type=int, default=24, help="Longest clip, steps.")
    add("--min-overlap", type=int, default=4, help="Steps shared by clips.")
    add(
        "--coherence-weight",
        type=float,
        default=0.8,
        help="Weight of the overlap coherence loss.",
    )
    add(
        "--state-handover",
        nargs="?",
        const="donor",
        default="none",
        choices=["none", "donor", "whole_past"],
        help="The states clips start from: zeros (none), those of earlier "
        "clips of their video (donor, the paper's; the bare flag), or "
        "those of a run over the video's whole past (whole_past).",
    )
    add(
        "--past-length",
        type=int,
        help="Steps of past a clip pipeline holds for --state-handover "
        "whole_past; none: motion_order's longest video.",
    )
    add(
        "--stage-filters",
        type=int,
        nargs="+",
        default=[8, 16],
        help="CBM filters of each stage of residual blocks.",
    )
    add(
        "--paper-cell",
        action="store_true",
        help="Train the paper's CBM cell (keras_cbm.layers.PAPER_CELL: "
        "ungated T, sigmoid, multiply merge) instead of the layers' "
        "defaults, whose gated T remembers (README, Design decisions).",
    )
    add_cell_flags(parser)
    add(
        "--batch-norm",
        choices=["true", "false", "representation", "temporal"],
        default="true",
        help="What to batch-normalise of the CBM convolutions: R's and T's "
        "input terms, nothing, R's only or T's only.",
    )
    add(
        "--blocks-per-stage",
        type=int,
        default=1,
        help="Two-layer residual blocks a stage.",
    )
    add("--epochs", type=int, default=7, help="Training epochs.")
    add("--batch-size", type=int, default=16, help="Videos per batch.")
    add(
        "--learning-rate",
        type=float,
        default=3e-3,
        help="Initial learning rate; a cosine decays it to 0.",
    )
    add(
        "--eval-length",
        type=int,
        default=None,
        help="Steps of a test window; none: 2 * --max-length (a whole "
        "motion_order video: a window must hold both motions).",
    )
    add(
        "--eval-stride",
        type=int,
        default=None,
        help="Steps between test windows; none: half the test windows' "
        "length.",
    )
    add("--seed", type=int, default=0, help="Seed of weights and clips.")
    add(
        "--output",
        default="outputs/action_recognition",
        help="Folder of the outputs.",
    )
    add("--verbose", type=int, default=1, help="model.fit verbosity.")
    parser.set_defaults(**defaults)
    return parser.parse_args(argv)


def motion_order_builder(args, config_name):
    """The TFDS builder of `config_name`, or of a custom config when the
    size flags differ from it."""
    import tensorflow_datasets as tfds

    import keras_cbm.datasets  # registers the builders

    base = keras_cbm.datasets.MotionOrder.builder_configs[config_name]
    overrides = {
        "train_videos": args.train_videos,
        "test_videos": args.test_videos,
        "min_frames": args.min_frames,
        "max_frames": args.max_frames,
        "frame_size": args.frame_size,
    }
    overrides = {
        key: value
        for key, value in overrides.items()
        if value is not None and value != getattr(base, key)
    }
    if not overrides:
        return tfds.builder(
            f"motion_order/{config_name}", data_dir=args.data_dir
        )
    suffix = "_".join(f"{k}{v}" for k, v in sorted(overrides.items()))
    config = keras_cbm.datasets.MotionOrderConfig(
        **{
            **{
                field: getattr(base, field)
                for field in (
                    "anticipation",
                    "frame_size",
                    "min_frames",
                    "max_frames",
                    "num_distractors",
                    "cue_frames",
                    "train_videos",
                    "test_videos",
                    "seed",
                )
            },
            **overrides,
            "name": f"{config_name}_{suffix}",
            "description": f"{config_name} with {overrides}.",
        }
    )
    return tfds.builder("motion_order", config=config, data_dir=args.data_dir)


# Training clips (unbatched) and whole test videos, from any source.
Splits = collections.namedtuple(
    "Splits",
    "train_clips test num_classes frame_shape num_train num_test name "
    "description",
)


def load_splits(args, config_name):
    """The `Splits` of `--videos`, `--tfds` or `motion_order`."""
    if args.videos:
        return video_file_splits(args)
    if args.tfds:
        return tfds_splits(args)
    return motion_order_splits(args, config_name)


def motion_order_splits(args, config_name):
    """Builds (if needed) and loads motion_order, decoded and cached in
    memory."""
    start = time.perf_counter()
    builder = motion_order_builder(args, config_name)
    builder.download_and_prepare()
    seconds = time.perf_counter() - start

    def keep(element):
        return {"video": element["video"], "label": element["label"]}

    train, test = (
        builder.as_dataset(split=split).map(keep).cache()
        for split in ("train", "test")
    )
    config = builder.builder_config
    return Splits(
        train_clips=overlapping_clips(args, train, config.max_frames),
        test=test,
        num_classes=builder.info.features["label"].num_classes,
        frame_shape=(config.frame_size, config.frame_size, 1),
        num_train=config.train_videos,
        num_test=config.test_videos,
        name=f"motion_order/{config.name}",
        description=f"{config.min_frames}-{config.max_frames} frames, ready "
        f"in {seconds:.0f} s ({builder.data_dir})",
    )


def tfds_splits(args):
    """A TFDS video dataset with ucf101's features, its frames resized to
    `--frame-size` in `--color-mode`."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    from keras_cbm.data.video.frame_resize import resize

    size = args.frame_size or 32
    builder = tfds.builder(args.tfds, data_dir=args.data_dir)
    builder.download_and_prepare()

    def keep(element):
        video = element["video"]
        if args.color_mode == "grayscale" and video.shape[-1] == 3:
            video = tf.cast(tf.image.rgb_to_grayscale(video), "uint8")
        return {
            "video": resize(video, (size, size), "bilinear"),
            "label": element["label"],
        }

    train, test = (
        builder.as_dataset(split=split).map(keep, tf.data.AUTOTUNE)
        for split in ("train", "test")
    )
    channels = 1 if args.color_mode == "grayscale" else 3
    return Splits(
        train_clips=overlapping_clips(args, train),
        test=test,
        num_classes=builder.info.features["label"].num_classes,
        frame_shape=(size, size, channels),
        num_train=int(train.cardinality()),
        num_test=int(test.cardinality()),
        name=args.tfds,
        description=f"resized to {size}x{size} ({builder.data_dir})",
    )


def video_file_splits(args):
    """The video files of `--videos`: clips decoded frame by frame for
    training, whole videos for testing."""
    from keras_cbm import data

    if args.state_handover == "whole_past":
        raise ValueError(
            "`--state-handover whole_past` needs each video's past frames, "
            "which the file pipeline does not deliver yet: use motion_order "
            f"or --tfds. Received: --videos={args.videos}"
        )
    size = args.frame_size or 32
    frames = {
        "color_mode": args.color_mode,
        "frame_size": (size, size),
        "on_error": args.on_error,
    }
    train_dir, test_dir = (
        os.path.join(args.videos, split) for split in ("train", "test")
    )
    if os.path.isdir(train_dir) and os.path.isdir(test_dir):
        train_files = {"directory": train_dir}
        test_files = {"directory": test_dir, "shuffle": False}
    else:
        split = {"validation_split": 0.2, "seed": args.seed}
        train_files = {"directory": args.videos, "subset": "training", **split}
        test_files = {"directory": args.videos, "subset": "validation", **split}
    train_clips = data.video_clips_from_directory(
        clips_per_video=args.clips_per_video,
        min_length=args.min_length,
        max_length=args.max_length,
        min_overlap=args.min_overlap,
        frame_stride=args.frame_stride,
        seed=args.seed,
        **train_files,
        **frames,
    )
    test = data.video_dataset_from_directory(
        class_names=train_clips.class_names, **test_files, **frames
    )
    return Splits(
        train_clips=train_clips,
        test=test,
        num_classes=len(train_clips.class_names),
        frame_shape=(size, size, 1 if args.color_mode == "grayscale" else 3),
        num_train=len(train_clips.file_paths),
        num_test=len(test.file_paths),
        name=args.videos,
        description=f"{len(train_clips.class_names)} classes, resized to "
        f"{size}x{size}, decoded clip by clip",
    )


def past_length(args, max_frames=None):
    """The steps of past the clips hold: `None` unless `--state-handover
    whole_past`, then `--past-length` or that of `max_frames` frames."""
    if args.state_handover != "whole_past":
        return None
    if args.past_length is None and max_frames is None:
        raise ValueError(
            "`--state-handover whole_past` needs `--past-length` (steps of "
            "the longest video) for this dataset. Received: --past-length "
            "unset"
        )
    return args.past_length or -(-max_frames // args.frame_stride)


def overlapping_clips(args, videos, max_frames=None):
    """Overlapping random clips of whole videos, for training."""
    from keras_cbm import data

    return data.overlapping_clips(
        videos.shuffle(2048, seed=args.seed),
        args.clips_per_video,
        args.min_length,
        args.max_length,
        min_overlap=args.min_overlap,
        frame_stride=args.frame_stride,
        seed=args.seed,
        past_length=past_length(args, max_frames),
    )


def clip_datasets(args, splits):
    """Batches of the training clips; sliding windows (`--eval-length`
    steps) covering every test video for per-video evaluation."""
    import tensorflow as tf

    from keras_cbm import data

    train_clips = splits.train_clips.batch(args.batch_size).prefetch(
        tf.data.AUTOTUNE
    )
    # The recurrent model runs windows of any length: longer ones than the
    # training clips hold more of a video's story from one initial state
    # (the same trained model scores higher: docs/design_decisions.md).
    length = args.eval_length or 2 * args.max_length
    stride = args.eval_stride or max(length // 2, 1)
    # The windows hold as much past as the training clips (whole_past).
    past = splits.train_clips.element_spec[0].get("past_alignment")
    test_windows = data.padded_window_batch(
        data.uniform_clips(
            splits.test,
            length,
            stride,
            frame_stride=args.frame_stride,
            past_length=None if past is None else past.shape[0],
        ),
        args.batch_size,
    ).prefetch(tf.data.AUTOTUNE)
    return train_clips, test_windows


def build_trainer(args, num_classes, frame_shape, steps):
    """The coherence trainer of a standalone classifier; its learning rate
    decays from `--learning-rate` to zero over the `steps` of training."""
    import keras

    from keras_cbm import layers
    from keras_cbm import models
    from keras_cbm import training

    cell = cell_arguments(args, layers.PAPER_CELL if args.paper_cell else {})
    net = models.standalone_classifier(
        num_classes,
        frame_shape=frame_shape,
        stage_filters=tuple(args.stage_filters),
        blocks_per_stage=args.blocks_per_stage,
        batch_norm={"true": True, "false": False}.get(
            args.batch_norm, args.batch_norm
        ),
        **cell,
    )
    trainer = training.CoherenceModel(
        net,
        coherence_weight=args.coherence_weight,
        state_handover=(
            None if args.state_handover == "none" else args.state_handover
        ),
    )
    trainer.compile(
        optimizer=keras.optimizers.AdamW(
            keras.optimizers.schedules.CosineDecay(args.learning_rate, steps),
            weight_decay=1e-4,
            clipvalue=5.0,
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return trainer


def plot_history(history, path, title, chance):
    """Writes a PNG with the losses and the accuracies per epoch, and
    `chance` accuracy as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = range(1, len(history["loss"]) + 1)
    figure, (losses, accuracies) = plt.subplots(1, 2, figsize=(11, 4.8))
    # Legends go under the plots, where no point can be.
    below = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.15), "ncol": 2}
    for key, label in (
        ("task_loss", "train task loss (per frame)"),
        ("val_task_loss", "test task loss (per frame)"),
    ):
        if key in history:
            losses.plot(epochs, history[key], marker="o", label=label)
    losses.set(xlabel="epoch", ylabel="cross-entropy", title="losses")
    if "coherence_loss" in history:
        # Its scale is far below the task loss: a second axis.
        coherence = losses.twinx()
        coherence.plot(
            epochs,
            history["coherence_loss"],
            ":",
            color="tab:red",
            marker="s",
            label="coherence_loss (right)",
        )
        coherence.set_ylabel("overlap coherence (MSE)")
        handles = losses.get_legend_handles_labels()
        extra = coherence.get_legend_handles_labels()
        losses.legend(handles[0] + extra[0], handles[1] + extra[1], **below)
    else:
        losses.legend(**below)
    if "accuracy" in history:
        accuracies.plot(
            epochs, history["accuracy"], marker="o", label="train (per frame)"
        )
    if "val_accuracy" in history:
        accuracies.plot(
            epochs,
            history["val_accuracy"],
            "--",
            marker="o",
            label="test (per video)",
        )
    accuracies.axhline(chance, color="gray", linestyle=":", label="chance")
    accuracies.set(
        xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1)
    )
    accuracies.legend(**below)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def export_saved_model(trainer, model_path, saved_model_path):
    """The trained model's SavedModel, written with TensorFlow: in this
    process on its backend, else from the saved `.keras` in a fresh
    TensorFlow process (export traces the model into TensorFlow graphs).
    Returns what the run prints for it."""
    import keras

    from keras_cbm import serving

    # The model was trained on the frames' uint8 values as they are.
    if keras.backend.backend() == "tensorflow":
        serving.export(trainer, saved_model_path, scale=1)
        return saved_model_path
    command = [
        "python",
        "-m",
        "keras_cbm.serving.export",
        model_path,
        saved_model_path,
        "--scale=1",
    ]
    if importlib.util.find_spec("tensorflow") is None:
        return "not written (needs TensorFlow): KERAS_BACKEND=tensorflow " + (
            " ".join(command)
        )
    subprocess.run(
        [sys.executable] + command[1:],
        env={**os.environ, "KERAS_BACKEND": "tensorflow"},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return f"{saved_model_path} (exported under TensorFlow)"


def run(args, config_name=None, task="action recognition"):
    import keras

    start = time.perf_counter()
    keras.utils.set_random_seed(args.seed)
    os.makedirs(args.output, exist_ok=True)
    splits = load_splits(args, config_name or args.config)
    chance = 1.0 / splits.num_classes
    print(
        f"Dataset {splits.name}: {splits.num_train} train / "
        f"{splits.num_test} test videos {splits.frame_shape}, "
        f"{splits.description}"
    )
    train_clips, test_windows = clip_datasets(args, splits)
    steps_per_epoch = -(-splits.num_train // args.batch_size)
    trainer = build_trainer(
        args,
        splits.num_classes,
        splits.frame_shape,
        args.epochs * steps_per_epoch,
    )
    depth = trainer.model.get_layer("deep_cbm").depth
    print(
        f"{depth}-layer CBM classifier, "
        f"{trainer.model.count_params():,} parameters; "
        f"{args.clips_per_video} clips of {args.min_length}-"
        f"{args.max_length} steps x {args.frame_stride} frames per video, "
        f"coherence weight {args.coherence_weight}"
    )
    history = trainer.fit(
        train_clips,
        epochs=args.epochs,
        validation_data=test_windows,
        # The clip pipeline shuffles; Keras' default `shuffle=True` only
        # warns that a dataset ignores it.
        shuffle=False,
        verbose=args.verbose,
    ).history
    # The last epoch's validation evaluated the final weights on the test
    # windows: evaluating again would repeat it.
    results = {
        name.removeprefix("val_"): values[-1]
        for name, values in history.items()
        if name.startswith("val_")
    }
    accuracy = float(results["accuracy"])

    model_path = os.path.join(args.output, "model.keras")
    curves_path = os.path.join(args.output, "training_curves.png")
    saved_model_path = os.path.join(args.output, "saved_model")
    history_path = os.path.join(args.output, "history.json")
    trainer.save(model_path)
    plot_history(
        history,
        curves_path,
        f"{depth}-layer CBM, {task} on {splits.name}",
        chance,
    )
    saved_model = export_saved_model(trainer, model_path, saved_model_path)
    with open(history_path, "w") as file:
        json.dump(
            {
                "history": history,
                "test": results,
                "args": vars(args),
                "seconds": time.perf_counter() - start,
            },
            file,
            indent=1,
        )
    seconds = time.perf_counter() - start
    print(f"Model (.keras):   {model_path}")
    print(f"Training curves:  {curves_path}")
    print(f"SavedModel:       {saved_model}")
    print(f"History:          {history_path}")
    print(
        f"Test accuracy (per video, {splits.num_test} videos): "
        f"{accuracy:.3f}   chance: {chance:.3f}   "
        f"total time: {seconds / 60:.1f} min"
    )
    return accuracy


def main(argv=None):
    run(parse_args(argv))


if __name__ == "__main__":
    main()
