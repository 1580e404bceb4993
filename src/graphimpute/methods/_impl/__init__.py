"""Method implementations, imported only when a method runs (they need torch); the registry entries
in graphimpute.methods hold the defaults."""
