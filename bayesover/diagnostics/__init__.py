"""Diagnostics: the ArviZ DataTree of a run, the verdict table and the HTML report."""
