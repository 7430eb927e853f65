"""Runners for the systems we compare against: Ray and Dask distributed.

Each imports its system only inside ``main``, so a missing peer is reported
as "not installed" instead of failing the import of this package.
"""
