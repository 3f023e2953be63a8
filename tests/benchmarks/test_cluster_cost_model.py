"""The cost model script's measuring parts on a tiny sweep (cluster_cost_model.py): they run on
the shards the sweep stores now (a scalar of training seconds beside the results, which tiling
once tried to concatenate) and time the run itself (run_sweep returns the shards it trained)."""

from __future__ import annotations

import dataclasses

import numpy as np
from backprop_bench.bench.executors import LocalExecutor
from backprop_bench.bench.sweep import SHARD_DIR

from . import cluster_cost_model as model


def test_timed_measures_wall_seconds_and_tiles_a_stored_shard(tmp_path):
    config = dataclasses.replace(model.EXAMPLE, lr=(0.3,), init=("tutorial",), hidden=(2,),
                                 optimizer=("sgd",), nets_per_cell=30, nets_per_shard=10,
                                 epochs=50)  # fmt: skip
    out = model.timed(config, LocalExecutor(), tmp_path)
    assert out["shards"] == config.n_shards and out["nets"] == config.n_nets()
    assert isinstance(out["seconds"], float) and out["seconds"] > 0
    shard = sorted((tmp_path / "run" / SHARD_DIR).glob("*.npz"))[0]
    one, three = model.tiled(shard, 1), model.tiled(shard, 3)
    assert one and set(one) == set(three)
    assert not {"tag", "shard", "seconds"} & set(one)
    for key, value in one.items():
        assert np.array_equal(three[key], np.concatenate([value] * 3, axis=-1))
