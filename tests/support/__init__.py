"""Helpers for tests: local servers, certificates and factories of test data."""
