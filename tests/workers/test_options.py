"""`Server.run()`'s worker arguments are checked before anything is opened."""

from __future__ import annotations

import pytest

from pounce import BuildError, Server
from pounce.workers import WorkerOptions, check, needs_supervisor, worker_kind
from pounce.workers.options import gil_enabled


async def app(scope: object, receive: object, send: object) -> None:
    raise AssertionError("never served")


SERVER = Server.builder().bind("127.0.0.1", 0).h1().asgi(app)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"workers": 0}, "workers=0"),
        ({"workers": "2"}, "workers='2'"),
        ({"workers": True}, "workers=True"),
        ({"worker_class": "greenlet"}, "worker_class='greenlet'"),
        ({"max_requests": 0}, "max_requests=0"),
        ({"max_requests": 10, "max_requests_jitter": -1}, "max_requests_jitter=-1"),
        ({"max_requests_jitter": 5}, "max_requests_jitter"),
    ],
)
def test_a_bad_value_is_a_build_error_naming_the_argument(
    kwargs: dict[str, object], names: str
) -> None:
    with pytest.raises(BuildError, match=f"Server.run\\({names}"):
        SERVER.run(**kwargs)  # type: ignore[arg-type]


def test_auto_is_processes_under_the_gil_and_threads_without() -> None:
    assert worker_kind("auto") == ("process" if gil_enabled() else "thread")
    assert worker_kind("thread") == "thread"
    assert worker_kind("process") == "process"


def test_one_worker_without_recycling_needs_no_supervisor() -> None:
    assert not needs_supervisor(WorkerOptions())
    assert not needs_supervisor(WorkerOptions(reuse_port=True, worker_class="thread"))
    assert needs_supervisor(WorkerOptions(workers=2))
    assert needs_supervisor(WorkerOptions(max_requests=1000))  # someone must replace it


def test_process_workers_need_fork(monkeypatch: pytest.MonkeyPatch) -> None:
    import multiprocessing

    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    with pytest.raises(BuildError, match="fork start method") as error:
        check(WorkerOptions(workers=2, worker_class="process"))
    assert "worker_class='thread'" in str(error.value)
    check(WorkerOptions(workers=2, worker_class="thread"))  # threads need no fork
