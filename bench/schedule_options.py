"""The update schedule and shortcut options of ``train``, ``sweep`` and sweep TOML files, checked
in one place: ``batch_size = "full" | K`` (``--batch-size full|K``) and ``shortcut = true|false``
(``--shortcut``). See kernels/schedules.py for what an epoch and a step are under each schedule.
"""

from __future__ import annotations

from backprop_bench.kernels import values

# Options added to sweeps after their first results: a stored config may lack them, and at these
# values they are left out of a sweep's identity and summaries, so existing sweeps keep theirs.
LATER_DEFAULTS = {"shortcut": False, "batch_size": None}


def batch_size(value) -> int | None:
    """``"full"`` or None -> None (full batch); a positive integer -> that int. The text "4" is
    refused, not converted, as every number in a config file is (the flag's text is read as a
    number by ``batch_size_flag``)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "full"):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"batch-size must be full or a positive number of patterns per step "
            f"(1 = per pattern), got {value!r}"
        )
    return values.integer("batch-size", value, 1)


def batch_size_flag(text: str) -> int | str:
    """--batch-size: full, or the digits of a number of patterns (checked by batch_size)."""
    return int(text.strip()) if text.strip().isdigit() else text


def shortcut(value) -> bool:
    return values.flag("shortcut", value)


def describe(batch_size_value: int | None) -> str:
    """How the nets were trained, for reports and the train command's header."""
    if batch_size_value is None:
        return "full-batch gradient descent"
    if batch_size_value == 1:
        return "per-pattern (online) gradient descent (patterns in a fresh order every epoch)"
    return (
        f"minibatch gradient descent ({batch_size_value} patterns per step, in a fresh order "
        "every epoch)"
    )
