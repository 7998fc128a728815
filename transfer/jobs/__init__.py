"""Batch jobs built from run specs: grids and backbone comparisons, cached cell by cell."""
