"""genre-hpc: music genre classification as a Dask batch job, on a laptop or a SLURM cluster."""

__version__ = "0.1.0"
