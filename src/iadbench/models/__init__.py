"""Models: backbone weights, the model registry, and the train/predict stages over the split file."""
