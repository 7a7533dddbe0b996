"""Data sources on the one data path: recordings (MusicNet layout) → windows → spectra."""
