"""Synthetic OCR text lines and scene text rendered with trdg."""
