"""Tests of processor.leader."""
