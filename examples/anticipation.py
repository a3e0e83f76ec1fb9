"""Trains a deep CBM classifier to anticipate Motion Order actions: the
label's second motion happens after the video ends.

`motion_order/anticipation` cuts every video before the agent turns; a
leader square, visible only during the first 32 frames, moves the way the
agent will turn. The model must read the leader early and remember it for
the 96-128 frames that follow. Training and evaluation are those of the
main job (`examples/action_recognition.py`: overlapping clips, the overlap
coherence loss, per-video evaluation on windows), and so are the flags and
outputs. Clips that miss the first 32 frames can only narrow the label to
the three classes that start with the agent's direction; the per-video
mean over windows lets the first window's evidence decide.

    python examples/anticipation.py            # ~10 min on 2 CPU cores
    python examples/anticipation.py --help
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from action_recognition import parse_args  # noqa: E402
from action_recognition import run  # noqa: E402


def main(argv=None):
    args = parse_args(
        argv,
        description=__doc__.split("\n\n")[0],
        config="anticipation",
        output="outputs/anticipation",
    )
    run(args, task="anticipation")


if __name__ == "__main__":
    main()
