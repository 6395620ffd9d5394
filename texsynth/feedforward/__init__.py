"""Feed-forward texture networks: the generator (:mod:`.pyramid` and its layers, options,
counter noise and windows), training (:mod:`.training`, its plan, settings, objective and
memory guard, data parallel runs), checkpoints, and sampling (:mod:`.loading`,
:mod:`.sampling`, :mod:`.tiled`, :mod:`.sample_files`, :mod:`.estimates`)."""
