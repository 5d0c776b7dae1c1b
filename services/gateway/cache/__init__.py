"""Finished answers kept by what determines them, in process or in Redis."""
