"""devices layer of hcasim."""
