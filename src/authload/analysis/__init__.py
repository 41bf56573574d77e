"""Run analysis with pandas: summaries, SLOs. No printing; the CLI prints."""

from authload.analysis.slo import SloResult, evaluate_slos
from authload.analysis.stats import PERCENTILES, endpoint_summary, load_records, percentile

__all__ = [
    "PERCENTILES",
    "SloResult",
    "endpoint_summary",
    "evaluate_slos",
    "load_records",
    "percentile",
]
