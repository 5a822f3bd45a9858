"""Workers: processes on any machine that take queued runs whose labels they have from a
PostgreSQL store, run them under a renewed lease and ship their output (``supertask
worker``, docs/workers.md): labels and their matching (:mod:`.labels`), the claim
(:mod:`.claim`, its selection :mod:`.fairshare`), the worker's loops, heartbeat and
attempt leases (:mod:`.worker`, :mod:`.attempt`), log shipping (:mod:`.chunks`), the lost
attempts of dead workers (:mod:`.lost`), the scheduler's side: a fire of a job with
``on:`` becomes a ``queued`` row (:mod:`.route`), and the operators' commands
(:mod:`.operators`)."""
