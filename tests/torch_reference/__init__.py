"""Small pure-PyTorch reference implementations used by parity tests and benchmarks (random weights only)."""
