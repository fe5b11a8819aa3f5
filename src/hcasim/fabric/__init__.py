"""fabric layer of hcasim."""
