"""Synthesis and stylisation by optimisation: the public calls (:mod:`.synthesis`), one
task's runner (:mod:`.runner`, :mod:`.task`), the L-BFGS/Adam loop (:mod:`.loop`), start
signals (:mod:`.start`), coarse-to-fine levels (:mod:`.levels`) and how each level fits in
memory (:mod:`.fitting`)."""
