"""The pieces of benchmarks/run.py: environment, servers, scenarios, wrk, memory, report."""
