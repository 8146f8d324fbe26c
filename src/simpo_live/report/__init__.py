"""Run directory -> one self-contained HTML report."""
