"""Tests of the benchmark code: smoke runs of each section and its pure helpers."""
