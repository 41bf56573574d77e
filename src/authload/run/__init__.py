"""Running a test: the story of a run (:mod:`.runner`), the target's side of it
(:mod:`.sessions`), the layout of Locust's processes (:mod:`.launchers`), Locust watched to
its end (:mod:`.locust_process`), the run's book (:mod:`.book`), `authload worker`
(:mod:`.worker`), the completion of a run that never finished (:mod:`.salvage`) and the
options' defaults (:mod:`.defaults`).

The package imports none of them, so that the CLI can read the defaults without importing
the runner."""
