import keras
from keras.src import testing

from keras_cbm.layers.per_frame import apply_per_frame
from tests.layers.testing_utils import random_sequences


class ApplyPerFrameTest(testing.TestCase):
    def test_each_frame_is_mapped_on_its_own(self):
        x = random_sequences((2, 3, 4, 4, 2))
        pool = keras.layers.MaxPooling2D(2)
        outputs = apply_per_frame(pool, x)
        self.assertEqual(tuple(outputs.shape), (2, 3, 2, 2, 2))
        for b in range(2):
            for t in range(3):
                self.assertAllClose(outputs[b, t], pool(x[b, t][None])[0])
