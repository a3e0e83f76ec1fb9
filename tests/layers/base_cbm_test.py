"""What every CBM layer shares: one list of cell arguments, and the checks
of `filters`/`units` and `initial_state` at the API boundary."""

import inspect

import keras
import numpy as np
import pytest

from keras_cbm.layers import CBM
from keras_cbm.layers import CBMCell
from keras_cbm.layers import ConvCBM1D
from keras_cbm.layers import ConvCBM2D
from keras_cbm.layers import ConvCBM3D
from keras_cbm.layers import ConvCBMCell
from keras_cbm.layers.base_cbm import CELL_ARGUMENTS

# A value differing from the default, per argument.
NON_DEFAULT = {
    "activation": "relu",
    "recurrent_activation": "hard_sigmoid",
    "use_bias": False,
    "kernel_initializer": "he_normal",
    "recurrent_initializer": "glorot_normal",
    "bias_initializer": "ones",
    "kernel_regularizer": "l2",
    "recurrent_regularizer": "l1",
    "bias_regularizer": keras.regularizers.L1L2(0.1, 0.2),
    "kernel_constraint": "non_neg",
    "recurrent_constraint": "unit_norm",
    "bias_constraint": "max_norm",
    "dropout": 0.25,
    "recurrent_dropout": 0.5,
    "temporal_dropout": 0.75,
    "merge": "concat",
    "batch_norm": True,
    "temporal_gate": "input",
    "seed": 7,
}
LAYERS = [
    lambda **kwargs: CBM(3, **kwargs),
    lambda **kwargs: ConvCBM1D(3, 2, **kwargs),
    lambda **kwargs: ConvCBM2D(3, 2, **kwargs),
    lambda **kwargs: ConvCBM3D(3, 2, **kwargs),
]
CELLS = [
    lambda **kwargs: CBMCell(3, **kwargs),
    lambda **kwargs: ConvCBMCell(2, 3, 2, **kwargs),
]


def test_the_list_covers_every_argument_once():
    names = [argument.name for argument in CELL_ARGUMENTS]
    assert sorted(names) == sorted(NON_DEFAULT)
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("make", CELLS, ids=["CBMCell", "ConvCBMCell"])
def test_cell_takes_keeps_and_configures_every_argument(make):
    cell = make(**NON_DEFAULT)
    default = make()
    config = cell.get_config()
    for argument in CELL_ARGUMENTS:
        assert config[argument.name] != default.get_config()[argument.name]
    rebuilt = type(cell).from_config(config)
    assert rebuilt.get_config() == config


@pytest.mark.parametrize(
    "make", LAYERS, ids=["CBM", "ConvCBM1D", "ConvCBM2D", "ConvCBM3D"]
)
def test_layer_passes_configures_and_reads_every_argument(make):
    layer = make(**NON_DEFAULT)
    config = layer.get_config()
    for argument in CELL_ARGUMENTS:
        name = argument.name
        # A layer property reads the cell's attribute.
        assert getattr(layer, name) is getattr(layer.cell, name)
        assert config[name] == argument.serialize(getattr(layer.cell, name))
        assert config[name] == layer.cell.get_config()[name]
    rebuilt = type(layer).from_config(config)
    assert rebuilt.get_config() == config
    saved = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert saved.get_config() == config
    assert saved.batch_norm is True and saved.seed == 7


def test_cell_arguments_are_documented_in_the_layers():
    for layer in (CBM, ConvCBM2D):
        doc = inspect.getdoc(layer)
        for argument in CELL_ARGUMENTS:
            assert f"{argument.name}:" in doc or f"{argument.name}," in doc


@pytest.mark.parametrize(
    "value", [np.int64(4), np.int32(4), np.array(4), np.uint8(4)]
)
def test_numpy_integer_filters_and_units(value):
    layer = ConvCBM2D(value, 3, padding="same")
    assert layer.filters == 4 and type(layer.filters) is int
    assert layer.get_config()["filters"] == 4
    assert layer(np.zeros((1, 2, 5, 5, 3))).shape == (1, 5, 5, 4)
    assert CBM(value).units == 4


@pytest.mark.parametrize("value", [0, -2, 2.0, True, "4", np.float32(4)])
def test_bad_filters_are_refused(value):
    with pytest.raises(
        ValueError, match="`filters` must be a positive integer"
    ):
        ConvCBM2D(value, 3)


@pytest.mark.parametrize(
    "state_shapes",
    [
        [(2, 8, 8, 4)],  # spatial size
        [(2, 5, 5, 3)],  # channels
        [(2, 5, 4)],  # rank
        [(2, 5, 5, 4), (2, 5, 5, 4)],  # number of states
        [(3, 5, 5, 4)],  # batch
    ],
)
def test_wrong_initial_state_is_refused(state_shapes):
    layer = ConvCBM2D(4, 3, padding="same")
    with pytest.raises(ValueError) as error:
        layer(
            np.zeros((2, 3, 5, 5, 3)),
            initial_state=[np.zeros(shape) for shape in state_shapes],
        )
    message = str(error.value)
    assert "`initial_state`" in message
    assert "(2, 5, 5, 4)" in message
    assert f"shapes {state_shapes}" in message


def test_wrong_dense_initial_state_is_refused():
    with pytest.raises(ValueError, match=r"shape \(2, 3\).*\[\(2, 4\)\]"):
        CBM(3)(np.zeros((2, 3, 4)), initial_state=[np.zeros((2, 4))])
