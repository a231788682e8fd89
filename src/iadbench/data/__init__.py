"""Data stages: manifest, categories, split, import, summary."""
