"""The embedded synthetic dataset: seeded generators of MVTec-layout products with exact defect masks."""
