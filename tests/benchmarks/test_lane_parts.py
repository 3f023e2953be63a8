"""lane_parts --backward times every call of the backward pass that steps in its tiles."""

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
    assert parts == ["bias sums and step", "weight gradients and step",
                     "product below, derivative", "weight gradients stored"] * 2 + [
                     "bias sums and step", "weight gradients and step"]  # fmt: skip
    assert all("us per net-epoch (" in line for line in lines if line.startswith("    "))


def test_a_net_that_steps_after_its_backward_pass_is_refused(capsys):
    with pytest.raises(SystemExit) as stop:
        lane_parts.main(["--layers", "8-32-32-1", "--samples", "16", "--backward"])
    assert stop.value.code == 2
    assert "does not step in its tiles" in capsys.readouterr().err
