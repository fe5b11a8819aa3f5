"""ib layer of hcasim."""
