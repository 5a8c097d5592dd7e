"""Building blocks of the raw-lake simulator (jobs/simulate.py): prompt text, population, traffic."""
