"""The paper's layouts at full size, as builder arguments.

`backbone_classifier(num_classes=101, **PAPER_PRESETS["backbone_classifier"])`
builds the reference's backbone-supported model, and so on. The builders'
own defaults are small versions that train on a CPU.
"""

PAPER_PRESETS = {
    # VGG19 pool5 features (7x7x512) under 15 CBM layers of 512 filters,
    # conv shortcuts every 5 layers, pooled to 1x1; TD 1.0; tanh. The
    # head's width is not in the method notes: 1024 is a choice.
    "backbone_classifier": {
        "frame_shape": (224, 224, 3),
        "depth": 15,
        "filters": 512,
        "jump_stride": 5,
        "pool_after": (5, 10, 15),
        "temporal_dropout": 1.0,
        "activation": "tanh",
        "head_units": 1024,
        "head_dropout": 0.5,
    },
    # ResNet-18's layout with every convolution a CBM layer; TD 0; ReLU.
    "standalone_classifier": {
        "frame_shape": (224, 224, 3),
        "stage_filters": (64, 128, 256, 512),
        "blocks_per_stage": 2,
        "temporal_dropout": 0.0,
        "activation": "relu",
    },
    # KTH: 10 frames in, 20 out; 15 CBM layers x 256 filters at 1/8 of the
    # frame size, identity shortcuts every 5 layers; TD 0.5; ReLU. The
    # frame size (128x128 grey, as MCnet's KTH setup) is an assumption.
    "future_frame_predictor": {
        "frame_shape": (128, 128, 1),
        "input_frames": 10,
        "output_frames": 20,
        "encoder_filters": (64, 128, 256),
        "depth": 15,
        "filters": 256,
        "jump_stride": 5,
        "temporal_dropout": 0.5,
        "activation": "relu",
    },
}
"""The paper's layouts at full size, as builder arguments, by builder name:
`backbone_classifier(num_classes=101, **PAPER_PRESETS["backbone_classifier"])`
builds the reference's backbone-supported model."""
