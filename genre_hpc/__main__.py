"""`python -m genre_hpc <stage> ...`: the console command without its script wrapper."""

from .cli import main

main()
