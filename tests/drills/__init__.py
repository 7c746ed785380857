"""Crash and concurrency drills for the reliability targets D1–D5 and D8
(/work/shared/spec/reliability.md). They start real worker processes
(:mod:`tests.drills.worker_proc`) and kill them."""
