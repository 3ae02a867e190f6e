"""`RestartPolicy`: the back-off after fast failures, and when to give up."""

from __future__ import annotations

from pounce.workers.policy import RestartPolicy


def test_a_death_after_serving_a_while_is_not_fast() -> None:
    policy = RestartPolicy()
    assert policy.is_fast(None)  # never ready
    assert policy.is_fast(0.5)
    assert not policy.is_fast(1.0)


def test_the_delay_doubles_from_the_second_start_up_to_the_cap() -> None:
    policy = RestartPolicy(base_delay=0.1, max_delay=0.5)
    assert [policy.delay(n) for n in range(6)] == [0.0, 0.1, 0.2, 0.4, 0.5, 0.5]


def test_gives_up_after_max_failures_in_a_row() -> None:
    policy = RestartPolicy(max_failures=3)
    assert [policy.gives_up(n) for n in (1, 2, 3)] == [False, False, True]
