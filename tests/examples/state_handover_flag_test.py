"""The main job's `--state-handover`: a choice of `none`, `donor` (the bare
flag, as before) and `whole_past`, which runs end to end."""

import os

import pytest

from tests.examples.examples_smoke_test import ROOT
from tests.examples.examples_smoke_test import run_script
from tests.examples.examples_smoke_test import tiny_classifier_flags


@pytest.fixture
def action_recognition(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "examples"))
    import action_recognition

    return action_recognition


def test_flag_is_a_choice_and_the_bare_flag_means_donor(action_recognition):
    parse = action_recognition.parse_args
    assert parse([]).state_handover == "none"
    assert parse(["--state-handover"]).state_handover == "donor"
    for choice in ("none", "donor", "whole_past"):
        assert parse(["--state-handover", choice]).state_handover == choice
    with pytest.raises(SystemExit):
        parse(["--state-handover", "past"])


def test_whole_past_holds_the_longest_video(action_recognition):
    args = action_recognition.parse_args(
        ["--state-handover", "whole_past", "--frame-stride=4"]
    )
    assert action_recognition.past_length(args, 30) == 8
    args.past_length = 5
    assert action_recognition.past_length(args, 30) == 5
    args.state_handover = "donor"
    assert action_recognition.past_length(args, 30) is None
    args = action_recognition.parse_args(["--state-handover", "whole_past"])
    with pytest.raises(ValueError, match="needs `--past-length`"):
        action_recognition.past_length(args)


@pytest.mark.slow
def test_main_job_trains_with_whole_past_clips(tmp_path):
    stdout = run_script(
        "examples/action_recognition.py",
        *tiny_classifier_flags(tmp_path, "recognition_small"),
        "--state-handover",
        "whole_past",
        timeout=900,
    )
    assert "Test accuracy (per video, 3 videos)" in stdout
