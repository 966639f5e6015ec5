"""Framework-free numeric and parsing code.

No Django imports here, so notebooks, benchmarks and tests can use it alone.
"""
