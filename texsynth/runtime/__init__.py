"""Run-time state, each in one place: the device (:mod:`.device`), random streams
(:mod:`.rng`), deferred Ctrl-C/SIGTERM (:mod:`.interrupts`) and the one object a run passes
down (:class:`.context.RunContext`). Imports only the contract."""
