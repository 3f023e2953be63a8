"""The peer table names as best the peer nearest to our kernel, by the ratio it prints."""

from __future__ import annotations

from . import peer_table


def test_best_peer_is_the_one_of_the_smallest_ratio(monkeypatch):
    # a run where the peer of the highest median rate is not the one nearest to us in the
    # interleaved repeats (our own time moved between them): the table must show the nearer
    monkeypatch.setattr(peer_table.ceiling, "ceiling", lambda *args, **kwargs: 1e8)
    results = {"2-4-1 adam": {
        "rates": {"ours": 1.89e7, "fastest by median": 1.06e7, "nearest": 9.7e6},
        "ratios": {"ours": 1.0, "fastest by median": 1.91, "nearest": 1.66},
        "n_epochs": 1000,
    }}  # fmt: skip
    row = peer_table.table(results).splitlines()[2]
    assert "| nearest | 9.7e+06 | 1.66x |" in row, row


import pytest  # noqa: E402


@pytest.mark.parametrize("argv, says", [
    (["--specs", "2-4-1", "--layers", "3-8-8-2"], "--specs and --layers exclude each other"),
    (["--activation", "tanh"], "--activation describes a job of your own: give its --layers"),
    (["--nets", "1024"], "--nets describes a job of your own"),
])  # fmt: skip
def test_options_that_would_be_ignored_are_refused(capsys, argv, says):
    # before any timing: both were ignored without a word (an outside audit)
    with pytest.raises(SystemExit) as done:
        peer_table.main(argv)
    assert done.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err
