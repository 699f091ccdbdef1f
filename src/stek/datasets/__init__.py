"""Datasets: built from ingested images and imports, cleaned, frozen into immutable versions."""
