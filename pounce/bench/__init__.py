"""The benchmark harness: your app under Pounce and its peers, side by side, with wrk.

``pounce bench APP`` (`pounce.bench.cli`) and the repository's own harness
(``python3 dev.py bench``, benchmarks/run.py) are both built on these modules:
`servers` (how each server is started), `scenario` (the request, its wrk
script, the check before timing), `runner` (start, check, warm up, interleave),
`wrk`, `procs` (pinning, process trees, CPU shares, RSS), `memory`,
`machine` and `report`. Nothing here is imported by the server: the ``pounce``
command loads it only for ``pounce bench``.
"""
