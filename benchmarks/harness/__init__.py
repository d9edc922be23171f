"""Pieces shared by the benchmarks: child processes, the nginx upstream, wrk, a streaming client."""
