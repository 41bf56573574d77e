"""Every file and directory name of a run directory, once."""

MANIFEST_FILE = "manifest.json"
RECORDS_FILE = "requests.parquet"
EVENTS_FILE = "events.jsonl"
SUMMARY_FILE = "summary.json"
MOCK_STATS_FILE = "mock_stats.json"  # on a mock: its counters' increase over the run
RESOURCES_FILE = "resources.jsonl"  # the Locust processes' memory and CPU, sampled
LOCUST_COUNTS_DIR = "locust_counts"  # per process: Locust's request count per endpoint
ABORT_FILE = ".abort"  # the runner asks the run's watcher to abort: the reason, one line
RECORDS_DIR = "records"
SPOOL_SUFFIX = ".arrows"
JOURNEYS_FILE = "journeys.parquet"
JOURNEYS_DIR = "journeys"  # under records/: each process's journey spool
MOCK_FAULTS_FILE = "mock_faults.json"  # the mock's fault windows over the run, as it logged them
MOCK_BEHAVIOUR_FILE = "mock_behaviour.json"  # a running mock's behaviour, as it reported it
BEHAVIOUR_FILE = "behaviour.json"  # the scenario's inline behaviour, handed to the embedded mock
REPORT_FILE = "report.html"

# a capacity run directory: its steps' run directories, and
CAPACITY_FILE = "capacity.json"  # the search's settings, steps and answer
CAPACITY_LOG = "capacity.log"  # what the steps' runs printed
CAPACITY_REPORT_FILE = "capacity.html"  # the page, drawn from capacity.json alone
