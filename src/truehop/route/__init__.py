"""Pure routing: URI normalisation, server and location selection, variables."""
