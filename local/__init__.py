"""Local development helpers: the fake DRS service, its model checks, and other offline tools."""
