"""Data: recorded measurements, image folders, degradations and the embedded default world."""
