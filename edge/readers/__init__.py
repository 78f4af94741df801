"""Readers: every recording format a clinic exports, bounded and streamed."""
