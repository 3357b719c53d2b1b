"""Conformance zoo: well-known architectures built from their papers, through every export."""
