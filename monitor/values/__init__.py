"""Value-profile scoring of assistant replies: moral, normative, cultural and legal dimensions with evidence."""
from monitor.values.dimensions import DIMENSIONS, FAMILIES, Dimension
from monitor.values.scorer import VERSION, ValueScorer, ValueScores, load_scorer

__all__ = ["DIMENSIONS", "FAMILIES", "Dimension", "VERSION", "ValueScorer", "ValueScores", "load_scorer"]
