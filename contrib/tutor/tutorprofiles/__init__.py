"""Tutor plugin for profiles."""
