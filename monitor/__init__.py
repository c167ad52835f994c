"""alignment-monitor: keeps watch over a deployed AI assistant (refusals, value drift, disparity)."""

__version__ = "0.1.0"
