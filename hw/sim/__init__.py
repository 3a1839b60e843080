"""The simulated world the simulated chips measure: the grid model and timed scenarios."""
