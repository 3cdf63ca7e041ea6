"""Tests of processor.registry."""
