"""Thin Lambda entry points: decorate, parse, call the domain once, answer."""
