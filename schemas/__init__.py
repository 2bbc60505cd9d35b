"""Typed models at the edges: DRS events, stored records and API documents.

This package imports nothing else of ours, so every layer can share one vocabulary without
dragging I/O or domain logic into the models.
"""
