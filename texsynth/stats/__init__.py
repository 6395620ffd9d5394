"""Texture statistics: what a run measures and how outputs are compared with exemplars.
Losses (:mod:`.losses` Gram and content, :mod:`.sliced`, :mod:`.autocorr`, :mod:`.guided`),
the ``patches`` extractor, blockwise evaluation, the objective every method minimises
(:mod:`.objective`, its targets and loss settings) and the run's statistics
(:mod:`.features`: ``FeatureSpec`` -> ``prepare`` -> ``Features``). Never imports
optimisation, feed-forward or the command line."""
