"""Loss landscapes of neural networks: directions, grids, evaluation, HDF5 store and plots."""
__version__ = "0.1.0"
