"""The files of a capacity run directory, named once: for the search that writes them and
for what reads them back (the run history, the verdict formats)."""

__all__ = ["CAPACITY_FILE", "CAPACITY_LOG", "CAPACITY_REPORT_FILE"]

CAPACITY_FILE = "capacity.json"  # the search's settings, steps and answer
CAPACITY_LOG = "capacity.log"  # what the steps' runs printed
CAPACITY_REPORT_FILE = "capacity.html"  # the page, drawn from capacity.json alone
