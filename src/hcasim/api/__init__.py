"""api layer of hcasim."""
