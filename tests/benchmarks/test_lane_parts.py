"""lane_parts --backward times every call of the backward pass as the training kernel runs it."""

from __future__ import annotations

import pytest
from backprop_bench.kernels.numba_tiles import TILE_ROWS

from . import lane_parts


@pytest.mark.slow
def test_the_backward_pass_is_timed_call_by_call(monkeypatch, capsys):
    monkeypatch.setattr(lane_parts, "REPEATS", 2)
    lane_parts.main(["--layers", "2-16-16-1", "--samples", "4", "--backward"])
    lines = capsys.readouterr().out.splitlines()
    layers = [line.strip() for line in lines if line.startswith("  layer")]
    assert layers == ["layer 2 (16 x 1; step tiles of one input):",
                      "layer 1 (16 x 16; step tiles of one input):",
                      "layer 0 (2 x 16; step tiles of one input):"]  # fmt: skip
    parts = [line.split("  ")[2].strip() for line in lines if line.startswith("    ")]
    stepping = ["bias sums and step", "weight gradients and step"]
    below, stored = ["product below, derivative"], ["weight gradients stored"]
    assert parts == (stepping + below + stored) * 2 + stepping + stored
    assert all("us per net-epoch (" in line for line in lines if line.startswith("    "))


@pytest.mark.slow
def test_a_layer_of_many_samples_and_units_steps_in_tiles_of_several_inputs(monkeypatch, capsys):
    """32 units on 16 samples: dL/dz of a column too large for tiles of one input (one unit
    above them is not)."""
    monkeypatch.setattr(lane_parts, "REPEATS", 2)
    lane_parts.main(["--layers", "4-32-1", "--samples", "16", "--backward", "--chunk", "16"])
    lines = capsys.readouterr().out.splitlines()
    assert "chunk of 16, the backward pass with the SGD step in its tiles" in lines[0]
    layers = [line.strip() for line in lines if line.startswith("  layer")]
    assert layers == ["layer 1 (32 x 1; step tiles of one input):",
                      f"layer 0 (4 x 32; step tiles of {TILE_ROWS} inputs):"]  # fmt: skip


def test_a_net_of_plain_loops_is_refused(capsys):
    with pytest.raises(SystemExit) as stop:
        lane_parts.main(["--layers", "3-5-2", "--samples", "4", "--backward"])
    assert stop.value.code == 2
    assert "layers of plain loops" in capsys.readouterr().err


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
