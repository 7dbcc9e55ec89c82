"""`opsplane demo`: a small platform of local processes, watched by a real control plane."""
