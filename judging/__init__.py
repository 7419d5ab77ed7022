"""Shared by `recipes/` (training) and `eval/` (benchmarks): the judge-example record, the judge prompt
format and the registry of dataset sources that yield judge examples. One definition, two users."""
