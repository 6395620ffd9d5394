"""The controls of a run beyond its statistics: guide maps and region masks
(:mod:`.regions`), training doodles and blend codes (:mod:`.doodles`), and one run's
controls resolved (:mod:`.run`: blends, guides, exemplar scale, colour). Imports the
contract and runtime."""
