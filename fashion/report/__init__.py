"""The run report: quality metrics for every model and one page to look at (``launch.py --aggregate RUN``)."""
from fashion.report.aggregate import ReportOptions, aggregate

__all__ = ["ReportOptions", "aggregate"]
