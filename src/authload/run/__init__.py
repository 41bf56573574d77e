"""Running a test: the story of a run (:mod:`.runner`), the target's side of it
(:mod:`.sessions`), the layout of Locust's processes (:mod:`.launchers`), Locust watched to
its end (:mod:`.locust_process`), the run's book (:mod:`.manifest`), `authload worker`
(:mod:`.worker`) and the completion of a run that never finished (:mod:`.salvage`)."""

from authload.run.launchers import MasterOptions
from authload.run.runner import RunResult, run
from authload.run.salvage import salvage
from authload.run.worker import worker

__all__ = ["MasterOptions", "RunResult", "run", "salvage", "worker"]
