"""The layout plan alone: plain Python, no layers and no tensors."""

import re

import pytest

from keras_cbm.layers.deep_cbm_layout import plan_layout


def test_17_layers_jump_2_is_the_resnet18_layout():
    # One stem layer, then eight two-layer blocks.
    layout = plan_layout(
        depth=17,
        filters=[64] * 5 + [128] * 4 + [256] * 4 + [512] * 4,
        kernel_size=[7] + [3] * 16,
        strides=[2, 1, 1, 1, 1, 2, 1, 1, 1, 2, 1, 1, 1, 2, 1, 1, 1],
        jump_stride=2,
        pool_after=(1,),
    )
    assert layout.depth == 17
    assert layout.blocks == tuple((i, i + 1) for i in range(1, 17, 2))
    assert layout.layers[0].block_start is None
    # Only the first block of stages 2-4 downsamples its shortcut.
    strides = {
        last + 1: layout.layers[last].shortcut_strides
        for _, last in layout.blocks
    }
    assert strides == {3: 1, 5: 1, 7: 2, 9: 1, 11: 2, 13: 1, 15: 2, 17: 1}
    # 224 -> 112 (stride) -> 56 (pool) -> 28 -> 14 -> 7.
    assert [layer.downsampling for layer in layout.layers] == (
        [1] + [4] * 5 + [8] * 4 + [16] * 4 + [32] * 3
    )
    assert layout.output_downsampling == 32


def test_pools_after_each_block_take_7x7_down_to_1x1():
    layout = plan_layout(
        depth=15, filters=4, jump_stride=5, pool_after=(5, 10, 15)
    )
    assert layout.blocks == ((0, 4), (5, 9), (10, 14))
    factors = [layer.downsampling for layer in layout.layers]
    assert factors == [1] * 5 + [2] * 5 + [4] * 5
    sizes = [-(-7 // f) for f in (1, 2, 4, layout.output_downsampling)]
    assert sizes == [7, 4, 2, 1]
    # A block's own pool follows its shortcut, so no shortcut downsamples.
    assert all(
        layout.layers[last].shortcut_strides == 1 for _, last in layout.blocks
    )


def test_pools_inside_a_block_stride_its_shortcut():
    layout = plan_layout(depth=3, filters=4, jump_stride=3, pool_after=(1, 2))
    assert layout.blocks == ((0, 2),)
    assert layout.layers[2].shortcut_strides == 4


def test_the_stem_is_depth_modulo_jump_stride():
    layout = plan_layout(depth=7, filters=4, jump_stride=3)
    assert layout.blocks == ((1, 3), (4, 6))
    assert plan_layout(depth=6, filters=4, jump_stride=3).blocks == (
        (0, 2),
        (3, 5),
    )
    assert plan_layout(depth=6, filters=4).blocks == ()


def test_per_layer_values_expand_one_value_or_keep_a_list():
    layout = plan_layout(
        depth=3,
        filters=[2, 3, 4],
        kernel_size=(5, 3, 1),
        strides=[2],
        temporal_dropout=[1.0, 0.5, 0],
    )
    assert [layer.filters for layer in layout.layers] == [2, 3, 4]
    assert [layer.kernel_size for layer in layout.layers] == [5, 3, 1]
    assert [layer.strides for layer in layout.layers] == [2, 2, 2]
    rates = [layer.temporal_dropout for layer in layout.layers]
    assert rates == [1.0, 0.5, 0]


def test_conv_shortcut_projects_every_block_auto_only_shape_changes():
    auto = plan_layout(depth=2, filters=4, jump_stride=2)
    conv = plan_layout(depth=2, filters=4, jump_stride=2, shortcut="conv")
    assert not auto.projects_shortcut((7, 7, 4), (7, 7, 4))
    assert auto.projects_shortcut((7, 7, 3), (7, 7, 4))
    assert auto.projects_shortcut((8, 8, 4), (4, 4, 4))
    assert conv.projects_shortcut((7, 7, 4), (7, 7, 4))


@pytest.mark.parametrize(
    "override, message",
    [
        (
            {"pool_after": (0, 5)},
            "`pool_after` must hold layer indices in [1, depth=15]. "
            "Received: pool_after=(0, 5)",
        ),
        (
            {"pool_after": (16,)},
            "`pool_after` must hold layer indices in [1, depth=15]. "
            "Received: pool_after=(16,)",
        ),
        (
            {"filters": [4] * 14},
            "`filters` must be one value or a list of `depth=15` values. "
            f"Received: filters={[4] * 14!r} (14 values)",
        ),
        (
            {"temporal_dropout": [0.5] * 3},
            "`temporal_dropout` must be one value or a list of `depth=15` "
            "values. Received: temporal_dropout=[0.5, 0.5, 0.5] (3 values)",
        ),
        (
            {"temporal_dropout": 1.5},
            "`temporal_dropout` must be in [0, 1]. "
            "Received: temporal_dropout=1.5",
        ),
        (
            {"strides": 0},
            "`strides` must be a positive integer or a list of them. "
            "Received: strides holding 0",
        ),
        (
            {"kernel_size": [3] * 14 + [True]},
            "`kernel_size` must be a positive integer or a list of them. "
            "Received: kernel_size holding True",
        ),
        (
            {"jump_stride": 0},
            "`jump_stride` must be a positive integer or a list of them. "
            "Received: jump_stride holding 0",
        ),
        (
            {"shortcut": "identity"},
            "`shortcut` must be one of ('auto', 'conv'). "
            "Received: shortcut='identity'",
        ),
        (
            {"depth": 0},
            "`depth` must be a positive integer or a list of them. "
            "Received: depth holding 0",
        ),
    ],
)
def test_bad_arguments_name_argument_expected_and_received(override, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        plan_layout(**{"depth": 15, "filters": 4, **override})
