"""The data sets: one record per dataset kind, splits, cache, streaming, file formats."""
