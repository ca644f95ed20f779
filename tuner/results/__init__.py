"""The read side of a run: show, the HTML report, terminal tables, costs, curves, Pareto fronts, plots."""
