"""The image-based grouping methods (`affinity`, `soft_routing`, `transfer`) killed with SIGKILL mid
search and resumed end like uninterrupted ones (deterministic mode), through the real run."""

import pytest

from tests.test_resume import args, assert_same_search, run_and_kill, searched

# method flags (the tiniest search), the line after which the search is killed (its second
# of three or four checkpointed steps), a line a resumed search must not print again (its
# first step), and report.json's count of steps.
METHODS = {
    "affinity": (("--method=affinity", "--affinity_steps=8", "--affinity_every=2"),
                 "affinity step 4/8", "affinity step 2/8", ("measurements", 4)),
    "soft_routing": (("--method=soft_routing", "--soft_steps=6", "--soft_chunk=2"),
                     "soft routing step 4/6", "soft routing step 2/6", ("chunks", 3)),
    "transfer": (("--method=transfer", "--transfer_steps=6", "--transfer_chunk=2"),
                 "transfer towers step 4/6", "transfer towers step 2/6", ("chunks", 3)),
}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_killed_and_resumed_search_ends_like_an_uninterrupted_one(method, synthetic_dir,
                                                                   tmp_path):
    """Killed after its second checkpoint, resumed by the same command, the search ends
    with the identical tree, report (affinities, chunk readings, transfer matrices) and
    weights (the soft routing's logits, their Adam slots and its noise counter, the transfer
    towers and their optimizer included) as an uninterrupted one."""
    flags, kill_at, first, (key, count) = METHODS[method]
    run_and_kill(args(synthetic_dir, tmp_path / "whole", "", *flags), "tree:")
    uninterrupted = searched(tmp_path / "whole")
    value = uninterrupted[0][key]
    assert (value if isinstance(value, int) else len(value)) == count
    flag_args = args(synthetic_dir, tmp_path / "run", "", *flags)
    run_and_kill(flag_args, kill_at)
    resumed = run_and_kill(flag_args, "tree:")
    assert "resuming at phase search" in resumed and first not in resumed
    assert_same_search(searched(tmp_path / "run"), uninterrupted)
