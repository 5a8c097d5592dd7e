"""Building blocks of the raw-lake simulator (simulator/simulate.py): prompt text, population, traffic."""
