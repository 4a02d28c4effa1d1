"""``qmstats simulate``: a deterministic, realistic Quality Month played against the service.

Pure parts (no I/O): ``plan`` (the month as submissions), ``ledger`` (the figures to expect),
``payloads``, ``profile``, ``budget``, ``regionsample``. HTTP parts: ``client``, ``server``, ``run``;
the command line in ``command``. Benchmarks load events with ``plan.generate_events``.
"""
