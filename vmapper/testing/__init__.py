"""Testing helpers for users of vmapper: the per-sample oracle."""
from .oracle import check_batching, per_sample_results
from .grads import check_grads

__all__ = ["check_batching", "per_sample_results", "check_grads"]
