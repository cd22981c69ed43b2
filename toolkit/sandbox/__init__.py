"""Sandbox package placeholder."""
