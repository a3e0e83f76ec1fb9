"""A keras-tuner `HyperModel` of coherence-trained deep CBM classifiers."""

import keras
import keras_tuner

from keras_cbm.models.backbone_classifier import backbone_classifier
from keras_cbm.training.coherence_model import CoherenceModel

TUNED = (
    "depth",
    "filters",
    "jump_stride",
    "temporal_dropout",
    "merge",
    "temporal_gate",
    "recurrent_activation",
)
# The `"temporal_unit"` choice: the default gated T, or the paper's.
TEMPORAL_UNITS = {
    "gated": {"temporal_gate": "recurrent", "recurrent_activation": "tanh"},
    "paper": {"temporal_gate": None, "recurrent_activation": "sigmoid"},
}


class CBMHyperModel(keras_tuner.HyperModel):
    """Builds compiled `CoherenceModel`s over backbone-supported deep CBM
    classifiers, for `RandomSearch`, `BayesianOptimization` or `Hyperband`.

    The search space (names stable across trials):

    - `depth`: integer in [2, 8], the CBM layers;
    - `filters`: one of 8, 16, 32, 64;
    - `jump_stride`: integer in [1, 4], the layers a shortcut spans;
    - `temporal_dropout`: 0.0 to 1.0 in steps of 0.25;
    - `merge`: `"add"`, `"multiply"` or `"concat"`;
    - `temporal_unit`: `"gated"` (the layers' default T) or `"paper"` (the
      paper's T, `temporal_gate=None` with a sigmoid); with
      `merge="multiply"` the latter is the paper's whole cell;
    - `coherence_weight`: 0.0 to 2.0 in steps of 0.5;
    - `learning_rate`: 1e-4 to 1e-2, log-uniform (Adam).

    Narrow or fix any of them with a `keras_tuner.HyperParameters` given
    to the tuner as `hyperparameters` (the first definition of a name
    wins). Every model gets its own copy of `backbone`, weights included,
    and the `DeepCBM` stack returns every frame whatever its depth, so the
    per-frame head and the coherence training fit every trial. Each model
    trains on `keras_cbm.data.overlapping_clips` batches and evaluates per
    video (`keras_cbm.data.uniform_clips`), with sparse categorical
    cross-entropy and accuracy. The inherited `fit(hp, model, *args,
    **kwargs)` calls `model.fit(*args, **kwargs)`, forwarding the tuner's
    callbacks, epochs and validation data.

    Args:
        backbone: A per-frame CNN, as `keras_cbm.models.backbone_classifier`
            takes it: frames `(batch, rows, cols, channels)` to feature maps.
        num_classes: Positive integer, the number of classes.
        name: Optional name of the hypermodel.
        tunable: Whether the hyperparameters of this hypermodel are added
            to the search space.
        **classifier_kwargs: Fixed arguments of `backbone_classifier`
            (`head_units`, `activation`, `batch_norm`, ...), none of the
            tuned ones (`temporal_gate` and `recurrent_activation` follow
            `temporal_unit`); `pool_after` defaults to none.

    Example:

    >>> import keras_tuner
    >>> cnn = keras.Sequential([keras.Input((16, 16, 3)),
    ...                         keras.layers.Conv2D(4, 3, strides=2)])
    >>> hypermodel = CBMHyperModel(cnn, num_classes=2, head_units=8)
    >>> trainer = hypermodel.build(keras_tuner.HyperParameters())
    >>> trainer.model.get_layer("deep_cbm").depth
    2
    """

    def __init__(
        self,
        backbone,
        num_classes,
        name=None,
        tunable=True,
        **classifier_kwargs,
    ):
        super().__init__(name=name, tunable=tunable)
        fixed_tuned = sorted(set(TUNED) & set(classifier_kwargs))
        if fixed_tuned:
            raise ValueError(
                f"`classifier_kwargs` must not hold the tuned {TUNED}; fix "
                "them with `keras_tuner.HyperParameters.Fixed` instead. "
                f"Received: {fixed_tuned}"
            )
        if not isinstance(backbone, keras.Model):
            raise ValueError(
                "`backbone` must be a Keras model from frames to feature "
                f"maps. Received: backbone={backbone!r}"
            )
        self.backbone = backbone
        self.num_classes = num_classes
        self.classifier_kwargs = {"pool_after": (), **classifier_kwargs}

    def build(self, hp):
        backbone = keras.models.clone_model(self.backbone)
        backbone.set_weights(self.backbone.get_weights())
        model = backbone_classifier(
            backbone,
            self.num_classes,
            depth=hp.Int("depth", 2, 8),
            filters=hp.Choice("filters", [8, 16, 32, 64]),
            jump_stride=hp.Int("jump_stride", 1, 4),
            temporal_dropout=hp.Float("temporal_dropout", 0.0, 1.0, 0.25),
            merge=hp.Choice("merge", ["add", "multiply", "concat"]),
            **TEMPORAL_UNITS[hp.Choice("temporal_unit", list(TEMPORAL_UNITS))],
            **self.classifier_kwargs,
        )
        trainer = CoherenceModel(
            model,
            coherence_weight=hp.Float("coherence_weight", 0.0, 2.0, 0.5),
        )
        trainer.compile(
            keras.optimizers.Adam(
                hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")
            ),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        return trainer
