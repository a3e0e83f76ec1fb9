import numpy as np
from keras.src import testing

from keras_cbm import metrics
from keras_cbm.datasets import polygons


class PolygonIoUTest(testing.TestCase):
    def test_rasterizes_pixel_centres_inside_even_odd(self):
        # Cells (1, 1)-(2, 2) of a 4-grid at 8 pixels: points 3..5.
        square = np.array([[[1, 1], [1, 2], [2, 2], [2, 1]]])
        mask = np.asarray(metrics.rasterize_polygons(square, 8, 4))[0]
        expected = np.zeros((8, 8))
        expected[3:5, 3:5] = 1
        self.assertAllEqual(mask, expected)

    def test_padding_and_degenerate_polygons(self):
        triangle = [[0, 0], [0, 7], [7, 0]]
        padded = np.array(
            [triangle + [[-1, -1]] * 2, [[1, 1], [2, 2]] + [[-1, -1]] * 3]
        )
        masks = np.asarray(metrics.rasterize_polygons(padded, 16, 8))
        unpadded = np.asarray(
            metrics.rasterize_polygons(np.array([triangle]), 16, 8)
        )
        self.assertAllEqual(masks[0], unpadded[0])
        self.assertGreater(masks[0].sum(), 50)
        self.assertEqual(masks[1].sum(), 0)  # two vertices: no area

    def test_iou_metric_and_bounding_box_baseline(self):
        square = np.array([[[1, 1], [1, 2], [2, 2], [2, 1]]])
        half = np.array([[[1, 1], [1, 2], [2, 2], [2, 1]]])
        true = np.array(metrics.rasterize_polygons(square, 8, 4))
        true[:, 3, :] = 0  # half of the square
        metric = metrics.PolygonMaskIoU(image_size=8, grid_size=4)
        metric.update_state(true[..., None], half)
        self.assertAllClose(metric.result(), 0.5)
        metric.update_state(true, -np.ones((1, 4, 2), "int32"))
        self.assertAllClose(metric.result(), 0.25)  # an empty prediction: 0
        box = np.asarray(metrics.bounding_box_masks(true))
        self.assertAllEqual(box, true)  # a rectangle is its own box
        triangle = np.asarray(
            metrics.rasterize_polygons(
                np.array([[[0, 0], [0, 7], [7, 0]]]), 16, 8
            )
        )
        box_iou = metrics.mask_iou(
            triangle, metrics.bounding_box_masks(triangle)
        )
        rows, cols = np.any(triangle[0], 1), np.any(triangle[0], 0)
        self.assertAllClose(
            box_iou, [triangle.sum() / (rows.sum() * cols.sum())], atol=1e-6
        )
        config = metrics.PolygonMaskIoU(8, 4).get_config()
        self.assertEqual((config["image_size"], config["grid_size"]), (8, 4))

    def test_dataset_masks_are_the_rasterised_vertices(self):
        config = polygons.Polygons.builder_configs["small"]
        for _, example in polygons.polygon_examples(config, "test", 3):
            mask = metrics.rasterize_polygons(
                example["vertices"][None], config.image_size, config.grid_size
            )
            self.assertAllEqual(np.asarray(mask)[0], example["mask"][..., 0])
