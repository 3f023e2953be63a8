"""lane_parts --backward times every call of the backward pass as the training kernel runs it."""

from __future__ import annotations

import pytest

from . import lane_parts


@pytest.mark.slow
def test_the_backward_pass_is_timed_call_by_call(monkeypatch, capsys):
    monkeypatch.setattr(lane_parts, "REPEATS", 2)
    lane_parts.main(["--layers", "2-16-16-1", "--samples", "4", "--backward"])
    lines = capsys.readouterr().out.splitlines()
    layers = [line.strip() for line in lines if line.startswith("  layer")]
    assert layers == ["layer 2 (16 x 1):", "layer 1 (16 x 16):", "layer 0 (2 x 16):"]
    parts = [line.split("  ")[2].strip() for line in lines if line.startswith("    ")]
    stepping = ["bias sums and step", "weight gradients and step"]
    below, stored = ["product below, derivative"], ["weight gradients stored"]
    assert parts == (stepping + below + stored) * 2 + stepping + stored
    assert all("us per net-epoch (" in line for line in lines if line.startswith("    "))


@pytest.mark.slow
def test_a_net_that_stores_its_gradients_is_timed_as_it_runs(monkeypatch, capsys):
    """32 units on 16 samples do not step in their tiles (_steps_in_backward): the gradients
    stored, their squares, on one chunk of the size asked for."""
    monkeypatch.setattr(lane_parts, "REPEATS", 2)
    lane_parts.main(["--layers", "4-32-1", "--samples", "16", "--backward", "--chunk", "16"])
    lines = capsys.readouterr().out.splitlines()
    assert "chunk of 16, the backward pass storing the gradients" in lines[0]
    parts = [line.split("  ")[2].strip() for line in lines if line.startswith("    ")]
    stored = ["bias sums and squares", "weight gradients stored", "their squares"]
    assert parts == stored + ["product below, derivative"] + stored


@pytest.mark.parametrize("chunk", ["0", "12", "-8"])
def test_a_chunk_of_no_whole_vectors_is_refused(chunk, capsys):
    with pytest.raises(SystemExit) as stop:
        lane_parts.main(["--layers", "2-16-16-1", "--samples", "4", "--chunk", chunk])
    assert stop.value.code == 2
    assert "--chunk: a positive multiple of" in capsys.readouterr().err


def test_whole_epochs_are_not_taken_apart(capsys):
    with pytest.raises(SystemExit) as stop:
        lane_parts.main(["--layers", "2-16-16-1", "--samples", "4", "--chunks", "8", "16",
                         "--backward"])  # fmt: skip
    assert stop.value.code == 2
    assert "--chunks times whole epochs" in capsys.readouterr().err
