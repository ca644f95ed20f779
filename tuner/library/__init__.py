"""The landscape library: recorded landscapes, their features, warm starts from the nearest ones."""
