"""Each paper experiment as data: the configs built from a profile's sizes, the strategies it compares and
the reference numbers (with their source) the notebook sets its results against."""
