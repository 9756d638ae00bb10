"""Testing helpers for users of vmapper: the per-sample oracle."""
from .oracle import check_batching, per_sample_results

__all__ = ["check_batching", "per_sample_results"]
