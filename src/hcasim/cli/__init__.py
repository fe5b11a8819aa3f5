"""cli layer of hcasim."""
