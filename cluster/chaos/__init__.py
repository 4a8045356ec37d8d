"""`make chaos`: mixed load through the gateway while real faults hit the running cluster, then
the invariants that must hold whatever happened (docs/reliability.md).

    traffic.py     the load: counter writes and reads, banners, gift-code claims, recommender
                   reads and events, composed pages and a fan-out; every answer tallied by kind
    faults.py      the faults: SIGKILL of a service instance (master and workers), SIGSTOP and
                   SIGCONT of a Redis shard or MariaDB, a shard restarted
    invariants.py  what is checked once the faults stop and the cluster has settled
    report.py      the table on the terminal and the JSON report
"""
