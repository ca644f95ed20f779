"""The write side of a run: tune and compare, the run lock, live progress."""
