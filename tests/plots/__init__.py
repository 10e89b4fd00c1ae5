"""Tests of the notebooks' figure modules (mcal_utils.plots.<topic>)."""
