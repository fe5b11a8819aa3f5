"""lab layer of hcasim."""
