"""fastlight: PyTorch Lightning's API, fused hot paths. `import fastlight as pl`."""
__version__ = "0.1.0"
