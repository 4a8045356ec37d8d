"""`python -m cluster.monitor` (`make monitor`): the cluster in one terminal frame, from Prometheus.

prometheus.py  the HTTP API client (instant queries, alerts) and its two errors
queries.py     the PromQL, one name per fact, taken from the recording rules, alerts and dashboards
snapshot.py    one frame's facts: every query at one instant, parsed into rows
units.py       numbers as an operator reads them (rates, shares, durations, bytes)
frame.py       a snapshot as rich tables
keys.py        the terminal in cbreak mode, so `q` quits between refreshes
"""
