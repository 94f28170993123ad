"""`python -m genre_hpc <stage> ...`: the console command without its script wrapper."""

from genre_hpc.cli import main

main()
