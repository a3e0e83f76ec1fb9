"""The Keras behaviour `keras_cbm.keras_internals.shadow_method` documents
(and `RecurrentStates` relies on): if a Keras release changes it, these
tests fail and name what changed. And the guards: where a Keras release
lacks a private part, keras_cbm names it (`KerasChangedError`)."""

import importlib
import types

import keras
import numpy as np
import pytest
from keras.src import testing

from keras_cbm import keras_internals
from keras_cbm.keras_internals import KerasChangedError
from keras_cbm.keras_internals import shadow_method
from keras_cbm.keras_internals import unshadow_method


def sequences():
    return np.random.default_rng(0).normal(size=(2, 4, 3)).astype("float32")


class ShadowMethodTest(testing.TestCase):
    def test_layer_call_looks_call_up_on_the_instance(self):
        layer = keras.layers.Dense(2)
        inputs = sequences()
        expected = layer(inputs)
        seen = []
        call = layer.call

        def shadow(x, *args, **kwargs):
            seen.append(x.shape)
            return 2.0 * call(x, *args, **kwargs)

        shadow_method(layer, "call", shadow)
        try:
            eager = layer(inputs)
            model = keras.Sequential([keras.Input((4, 3)), layer])
            compiled = model.predict(inputs, verbose=0)  # Traced / jitted.
        finally:
            unshadow_method(layer, "call")
        self.assertGreaterEqual(
            len(seen),
            2,
            msg="Keras no longer looks `call` up on the layer instance at "
            "each `Layer.__call__`: `RecurrentStates` cannot hand states over",
        )
        self.assertAllClose(eager, 2.0 * expected, atol=1e-6)
        self.assertAllClose(compiled, 2.0 * expected, atol=1e-6)
        self.assertAllClose(layer(inputs), expected, atol=1e-6)

    def test_rnn_call_runs_inner_loop_of_the_instance(self):
        for layer in (
            keras.layers.LSTM(3, return_sequences=True),
            keras.layers.GRU(3),
            keras.layers.SimpleRNN(3, return_sequences=True),
        ):
            inputs = sequences()
            layer(inputs)
            returned = []
            inner_loop = layer.inner_loop

            def shadow(
                sequences,
                initial_state,
                mask,
                training=False,
                inner_loop=inner_loop,
                returned=returned,
            ):
                result = inner_loop(
                    sequences=sequences,
                    initial_state=initial_state,
                    mask=mask,
                    training=training,
                )
                returned.append(result)
                return result

            shadow_method(layer, "inner_loop", shadow)
            try:
                output = layer(inputs)
            finally:
                unshadow_method(layer, "inner_loop")
            self.assertEqual(
                len(returned),
                1,
                msg="`keras.layers.RNN.call` no longer runs "
                "`self.inner_loop(sequences=, initial_state=, mask=, "
                "training=)`: `RecurrentStates` gets no final states",
            )
            last_output, outputs, states = returned[0]
            layer.return_state = True
            _, *expected_states = layer(inputs)
            layer.return_state = False
            self.assertIsInstance(states, (list, tuple))
            for got, expected in zip(states, expected_states, strict=True):
                self.assertAllClose(got, expected, atol=1e-6)
            self.assertAllClose(
                outputs if layer.return_sequences else last_output,
                output,
                atol=1e-6,
            )


class VersionGuardTest(testing.TestCase):
    def assert_names(self, error, behaviour):
        message = str(error.exception)
        self.assertIn(behaviour, message)
        self.assertIn(keras.__version__, message)
        for version in keras_internals.CHECKED_KERAS_VERSIONS:
            self.assertIn(version, message)

    def test_a_moved_private_name_is_named(self):
        with self.assertRaises(KerasChangedError) as error:
            keras_internals._private("keras.src.backend", "no_such_helper")
        self.assert_names(error, "`keras.src.backend.no_such_helper`")
        with self.assertRaises(KerasChangedError) as error:
            keras_internals._private("keras.src.no_such_module", "rnn")
        self.assert_names(error, "`keras.src.no_such_module.rnn`")

    def test_the_recurrent_loop_is_found_as_function_or_module(self):
        backend = importlib.import_module("keras.src.backend")
        loop = keras_internals._backend_rnn()
        # Keras 3.15 exposes the function, later releases the module.
        for exposed in (loop, types.SimpleNamespace(rnn=loop)):
            keras_internals._backend_rnn.cache_clear()
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(backend, "rnn", exposed)
                self.assertIs(keras_internals._backend_rnn(), loop)
        keras_internals._backend_rnn.cache_clear()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(backend, "rnn", types.SimpleNamespace())
            with self.assertRaises(KerasChangedError) as error:
                keras_internals._backend_rnn()
        keras_internals._backend_rnn.cache_clear()
        self.assert_names(error, "recurrent loop `backend.rnn`")

    def test_sub_layers_needs_the_tracked_list(self):
        with self.assertRaises(KerasChangedError) as error:
            keras_internals.sub_layers(types.SimpleNamespace())
        self.assert_names(error, "`_layers`")

    def test_shadowing_needs_the_class_method(self):
        with self.assertRaises(KerasChangedError) as error:
            shadow_method(keras.layers.Dense(2), "inner_loop", lambda: None)
        self.assert_names(error, "`Dense.inner_loop`")


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="The multi-worker workaround is TensorFlow's.",
)
def test_multi_worker_fit_needs_the_build_hook():
    from keras_cbm.training.multi_worker import MultiWorkerFit

    with pytest.raises(KerasChangedError, match="`_maybe_symbolic_build`"):

        class NoHook(MultiWorkerFit, keras.layers.Layer):
            pass
