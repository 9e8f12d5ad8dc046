"""The fake Euler service, its scenarios and a fake clock: shared by tests, demo and bench."""
