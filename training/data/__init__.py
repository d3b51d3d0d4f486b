"""Readers for the shared data files, generators of labelled episodes."""
