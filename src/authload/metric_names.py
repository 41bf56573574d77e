"""Prometheus metric names, labels and buckets: the one place dashboards and rules rely on.

Client side (Locust processes) uses the ``authload_`` prefix, the mock ``authload_mock_``.
"""

from __future__ import annotations

# Buckets of journeys (several calls and the user's think times), 50 ms to 10 min (seconds).
JOURNEY_BUCKETS = (
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.0,
    3.0,
    5.0,
    8.0,
    13.0,
    20.0,
    30.0,
    60.0,
    120.0,
    600.0,
)

# Buckets for auth latencies, 1 ms to 30 s (seconds).
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.4,
    0.6,
    0.8,
    1.0,
    1.5,
    2.5,
    4.0,
    6.0,
    10.0,
    15.0,
    30.0,
)

ENDPOINT = "endpoint"
STATUS = "status"
KIND = "kind"
API = "api"

# mock side
MOCK_REQUESTS = "authload_mock_requests"  # counter, exposed as *_total {endpoint, status}
MOCK_LATENCY = "authload_mock_request_duration_seconds"  # histogram {endpoint}
MOCK_IN_FLIGHT = "authload_mock_in_flight"  # gauge {endpoint}: being served
MOCK_QUEUED = "authload_mock_queued"  # gauge {endpoint}: waiting for capacity
MOCK_SHED = "authload_mock_shed"  # counter {endpoint}: refused with 503 by capacity
MOCK_RATE_LIMITED = "authload_mock_rate_limited"  # counter {endpoint}: refused with 429
MOCK_FAULT_ACTIVE = "authload_mock_fault_active"  # gauge {endpoint, kind}: 1 while active
MOCK_FAULTS_APPLIED = "authload_mock_faults_applied"  # counter {endpoint, kind}
MOCK_STALE_ACCEPTED = "authload_mock_stale_accepted"  # counter {api}: stale_revocation accepts
MOCK_TOKENS_ISSUED = "authload_mock_tokens_issued"  # counter {api}
MOCK_TOKENS_REVOKED = "authload_mock_tokens_revoked"  # counter {api}
MOCK_REFRESH_REUSE = "authload_mock_refresh_reuse_refused"  # counter
MOCK_FAMILIES_REVOKED = "authload_mock_families_revoked"  # counter: sessions ended by a reuse
MOCK_SESSIONS_EVICTED = "authload_mock_sessions_evicted"  # counter {api}

# client side (each Locust process; sum over processes for the whole run)
FLOW = "flow"
OUTCOME = "outcome"
REASON = "reason"

REQUESTS = "authload_requests"  # counter, exposed as *_total {endpoint, status}; 0 = no answer
LATENCY = "authload_request_duration_seconds"  # histogram {endpoint}: client-side time
ERRORS = "authload_errors"  # counter {endpoint, kind}: timeout, connect, reset, http, contract
USERS = "authload_users"  # gauge: running Locust users (workers and local runs only)
RETRIES = "authload_retries"  # counter: attempts sent after the first
RETRIES_THROTTLED = "authload_retries_throttled"  # counter: attempts rejected locally
FLOW_OUTCOMES = "authload_flow_outcomes"  # counter {flow, outcome}: journeys ended
JOURNEYS = "authload_journeys"  # counter: journeys of the scenario's mix ended (achieved rate)
JOURNEY_DURATION = "authload_journey_duration_seconds"  # histogram {flow}: intended start to end
SESSIONS_LOST = "authload_sessions_lost"  # counter {reason}
DROPPED_ARRIVALS = "authload_dropped_arrivals"  # counter: open-model arrivals dropped
ARRIVALS_WAITED = "authload_arrivals_waited"  # counter: open-model arrivals that waited a place
TARGET_ARRIVAL_RATE = "authload_target_arrival_rate"  # gauge: this process's share, per s

# The run's identity: every client-side metric above also carries these two labels, so
# dashboards and rules can select one scenario or one run (several runs may share a
# Prometheus). The mock's metrics do not: one mock may serve many runs.
SCENARIO = "scenario"
RUN = "run"  # the run id: the run directory's name
TARGET = "target"
SLO = "slo"
QUANTILE = "quantile"

# run state, exported by the master (or the only process) {scenario, run}
RUN_INFO = "authload_run_info"  # gauge {scenario, run, target}: 1 while the run lives
RUN_STAGE = "authload_run_stage"  # gauge: 0-based index of the current stage
RUN_USERS = "authload_run_users"  # gauge: users across all processes, as the master sees them
SLO_PASSING = "authload_slo_passing"  # gauge {slo}: 1 while met so far, 0 once broken
RUN_PASSING = "authload_run_passing"  # gauge: 1 while every SLO is met so far
SLO_ERROR_BUDGET = "authload_slo_error_budget"  # gauge {endpoint}: allowed error ratio

# pushed to a Pushgateway at the end of a run, from the run directory (one group per run:
# job="authload_runs", scenario, run); exact figures from the records, for runs too short to
# be scraped and for soak trends across runs
PUSHED_REQUESTS = "authload_run_requests"  # gauge {endpoint, status}: attempts in the run
PUSHED_LATENCY = "authload_run_latency_seconds"  # gauge {endpoint, quantile}: exact percentiles
PUSHED_ERROR_RATIO = "authload_run_error_ratio"  # gauge {endpoint}: failed attempts / attempts
PUSHED_DURATION = "authload_run_duration_seconds"  # gauge
PUSHED_VERDICT = "authload_run_verdict"  # gauge: 1 pass, 0 SLO failed
PUSHED_FINISHED = "authload_run_finished_timestamp_seconds"  # gauge: unix time of the end
PUSH_JOB = "authload_runs"
