"""The ``texsynth`` command line: the parser (:mod:`.arguments`) and the commands
(:mod:`.commands`), which parse, call one library function and format errors."""
