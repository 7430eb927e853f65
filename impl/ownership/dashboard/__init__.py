"""The dashboard: a live view of a running cluster, served by its head.

Pages (``/cluster``, ``/tasks``, ``/stream``, ``/objects``, ``/failures``)
updated live by server-sent events, ``/metrics`` in the Prometheus text
format, and ``/api/timeline`` (``ownership timeline``) in Chrome's
trace-event format. An ASGI app (:mod:`.app`, starlette on trio through
anyio) served by hypercorn's trio worker in the head process
(:mod:`.server`); its data is gathered by :mod:`.collector` from what the
cores already keep (their snapshots, and their logs read by :mod:`.probe`),
over the cluster's own transport.
"""
