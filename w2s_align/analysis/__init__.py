"""Analysis of saved per-example predictions: metrics and reports."""
